#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules configured in pyproject.toml [tool.mutmut]:
# ringrl/algorithms/, ringrl/rewards/grading.py, ringrl/rewards/extract.py,
# ringrl/eval/metrics.py, ringrl/curate/. See docs/testing.md.
#
#   pip install -e ".[test,mutation]"
#   benchmarks/mutation.sh                      # every module, then the score table
#   benchmarks/mutation.sh "ringrl.curate.*"    # one module (mutmut mutant-name glob)
#
# One module at a time, one worker, at the lowest CPU priority (the machine is shared).
# Each mutant runs only the tests (of the configured selection) that call the mutated
# function. mutants/ (git-ignored) keeps the mutated copies, the results and which tests
# call which function (new tests are added to that on the next run); every mutant of a
# module named here is checked again on each run (mutmut re-runs the mutants a name or glob
# selects). MUTATION_CLEAN=1 deletes mutants/ first (do that for a score to record). Ends
# with benchmarks/mutation_score.py's table (equivalent mutants, listed in docs/testing.md,
# left out of the score only if they survived; stale names are printed as warnings).
# A single mutant again, after a new test: python -m mutmut run --max-children 1 NAME...
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONPATH  # mutmut puts mutants/ first on sys.path; nothing may shadow it
if [ "${MUTATION_CLEAN:-0}" = 1 ]; then rm -rf mutants; fi
if [ "$#" -gt 0 ]; then
  modules=("$@")
else
  modules=("ringrl.eval.metrics.*" "ringrl.rewards.extract.*" "ringrl.rewards.grading.*" "ringrl.curate.*" "ringrl.algorithms.*")
fi
start=$(date +%s)
for m in "${modules[@]}"; do
  t0=$(date +%s)
  # the progress spinner goes to the log; the last lines say how many were checked
  nice -n 19 python -m mutmut run --max-children 1 "$m" > "/tmp/mutmut-${m//[^A-Za-z0-9_.]/_}.log" 2>&1 || {
    echo "mutmut failed on $m; see /tmp/mutmut-${m//[^A-Za-z0-9_.]/_}.log" >&2
    exit 1
  }
  echo "$m: $(( $(date +%s) - t0 )) s"
done
echo "all: $(( $(date +%s) - start )) s on $(nproc) cores (one mutmut worker)"
python benchmarks/mutation_score.py
