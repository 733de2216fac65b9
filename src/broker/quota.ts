// Per-user quotas on pinned leases ([broker.quota] in the config): a share of the pinned budget
// ("25%") or a size ("64G") per user, per group, and a default. A user's quota is their own entry,
// else the largest entry of the groups they belong to (primary group, or listed in /etc/group),
// else the default; no entry at all means no quota. Shares follow the budget as it moves.
// Pure: the account lists are parsed from /etc/passwd and /etc/group text handed in.

import type { SizeOrPercent } from "../config/schema.js";
import { resolveSize } from "./pressure.js";

export interface QuotaConfig {
  readonly default?: SizeOrPercent | undefined;
  readonly users?: Readonly<Record<string, SizeOrPercent>> | undefined;
  readonly groups?: Readonly<Record<string, SizeOrPercent>> | undefined;
}

export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export interface Group {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

/** /etc/passwd lines "name:x:uid:gid:...". */
export function parsePasswd(text: string): Account[] {
  const out: Account[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !/^\d+$/.test(f[2] ?? "") || !/^\d+$/.test(f[3] ?? "")) continue;
    out.push({ name: f[0] as string, uid: Number(f[2]), gid: Number(f[3]) });
  }
  return out;
}

/** /etc/group lines "name:x:gid:member,member". */
export function parseGroups(text: string): Group[] {
  const out: Group[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || !/^\d+$/.test(f[2] ?? "")) continue;
    const members = (f[3] ?? "").split(",").filter((m) => m !== "");
    out.push({ name: f[0] as string, gid: Number(f[2]), members });
  }
  return out;
}

export interface QuotaRule {
  readonly limit: SizeOrPercent;
  /** "user alice", "group ml", "default": where the quota comes from (status shows it). */
  readonly source: string;
}

export interface Quotas {
  /** The rules that apply to `uid` (kernel gid `gid`); empty: no quota. */
  rules(uid: number, gid: number): readonly QuotaRule[];
  /** The quota in bytes at this budget (the largest rule), or undefined without one. */
  limit(uid: number, gid: number, budget: number): { bytes: number; source: string } | undefined;
  /** The user's name, where /etc/passwd knows it. */
  name(uid: number): string | undefined;
}

/**
 * Builds the quota table. Throws nothing: names that match no account come back in `problems`
 * (one line each; the broker refuses to start on them, since a typo would silently mean no quota).
 */
export function buildQuotas(
  cfg: QuotaConfig | undefined,
  accounts: readonly Account[],
  groups: readonly Group[],
): { quotas: Quotas; problems: string[] } {
  const problems: string[] = [];
  const byUid = new Map<number, QuotaRule>();
  for (const [key, limit] of Object.entries(cfg?.users ?? {})) {
    const acct = accounts.find((a) => a.name === key);
    const uid = acct?.uid ?? (/^\d+$/.test(key) ? Number(key) : undefined);
    if (uid === undefined) {
      problems.push(
        `broker.quota.users.${key}: no such user in /etc/passwd; use a user name or a numeric uid`,
      );
      continue;
    }
    byUid.set(uid, { limit, source: `user ${key}` });
  }
  const groupRules: { gid: number; members: Set<string>; rule: QuotaRule }[] = [];
  for (const [key, limit] of Object.entries(cfg?.groups ?? {})) {
    const g = groups.find((x) => x.name === key);
    const gid = g?.gid ?? (/^\d+$/.test(key) ? Number(key) : undefined);
    if (gid === undefined) {
      problems.push(
        `broker.quota.groups.${key}: no such group in /etc/group; use a group name or a numeric gid`,
      );
      continue;
    }
    groupRules.push({
      gid,
      members: new Set(g?.members ?? []),
      rule: { limit, source: `group ${key}` },
    });
  }
  const names = new Map(accounts.map((a) => [a.uid, a]));
  const rules = (uid: number, gid: number): QuotaRule[] => {
    const own = byUid.get(uid);
    if (own) return [own];
    const acct = names.get(uid);
    const mine = groupRules.filter(
      (g) => g.gid === gid || g.gid === acct?.gid || (acct && g.members.has(acct.name)),
    );
    if (mine.length > 0) return mine.map((g) => g.rule);
    return cfg?.default ? [{ limit: cfg.default, source: "default" }] : [];
  };
  const quotas: Quotas = {
    rules,
    limit(uid, gid, budget) {
      let best: { bytes: number; source: string } | undefined;
      for (const r of rules(uid, gid)) {
        const bytes = resolveSize(r.limit, budget);
        if (!best || bytes > best.bytes) best = { bytes, source: r.source };
      }
      return best;
    },
    name: (uid) => names.get(uid)?.name,
  };
  return { quotas, problems };
}
