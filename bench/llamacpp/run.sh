#!/usr/bin/env bash
# The one command for the GPU machine (repository root, .carry/llama/ carried):
#   GIT_COMMIT=<sha> bash bench/llamacpp/run.sh
# Builds llama.cpp and libspillover.so, writes the random GGUFs, runs llama-bench and
# llama-simple with and without spillover, and writes llamacpp-results.json,
# llamacpp-proofs.json, hw-profile.json and logs to $OUT. Under 9 minutes; see run.py.
set -u
cd "$(dirname "$0")/../.."
export SPILLOVER_COMMAND="bash bench/llamacpp/run.sh $*"
python3 bench/llamacpp/run.py "$@"
