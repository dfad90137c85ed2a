#!/usr/bin/env bash
# sigforge on a SLURM allocation: a Flink standalone cluster on the allocated nodes, Beam's Flink job server, an
# EXTERNAL Python worker pool beside every task manager, `sigforge run`, and everything stopped at the end.
# AN EXAMPLE, NOT RUN: no SLURM cluster was available when it was written (docs/running-at-scale.md says what was
# run). Check it against your site's rules (modules, partitions, ports) before use.
#
#   sbatch docs/examples/slurm_flink.sh            # from the sigforge checkout, on the shared filesystem
#
# Every node must see, at the same paths: this checkout, SIGFORGE_VENV (the Python environment with sigforge
# installed: the worker pools run it), FLINK_HOME, JOB_SERVER_JAR, RAW, OUT and WORK_ROOT.
#SBATCH --job-name=sigforge-flink
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --mem=0
#SBATCH --exclusive
#SBATCH --time=04:00:00
#SBATCH --output=sigforge-flink-%j.log
set -euo pipefail

# ---- what to run (override in the environment: sbatch --export=ALL,RAW=...,OUT=... ) ----------------------------
: "${SIGFORGE_VENV:?the shared Python environment with sigforge installed}"
: "${FLINK_HOME:?a Flink 1.19 distribution on the shared filesystem}"
: "${JOB_SERVER_JAR:?beam-runners-flink-1.19-job-server-<beam version>.jar, the Beam version of SIGFORGE_VENV}"
: "${RAW:?raw input folder on the shared filesystem}"
: "${OUT:?dataset folder on the shared filesystem}"
CONFIG=${CONFIG:-run_configs/g2net.yaml}
WORK_ROOT=${WORK_ROOT:-$PWD/slurm-work}     # shared: Flink config and the job server's staged artifacts
WORKER_POOL_PORT=${WORKER_POOL_PORT:-50000}
JOB_PORT=${JOB_PORT:-8099}
REST_PORT=${REST_PORT:-8081}

mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD=${NODES[0]}                             # this batch script runs on the first node
N=${#NODES[@]}
SLOTS=${SLURM_CPUS_PER_TASK:-1}              # one Flink slot (and one Python SDK worker) per core
WORK=$WORK_ROOT/$SLURM_JOB_ID
mkdir -p "$WORK/conf" "$WORK/artifacts"
# shellcheck disable=SC1091
source "$SIGFORGE_VENV/bin/activate"

# ---- Flink configuration for this allocation (Flink 1.19 reads conf/config.yaml) --------------------------------
cp -r "$FLINK_HOME/conf/." "$WORK/conf/"
rm -f "$WORK/conf/flink-conf.yaml"
cat > "$WORK/conf/config.yaml" <<EOF
jobmanager.rpc.address: $HEAD
jobmanager.bind-host: 0.0.0.0
rest.address: $HEAD
rest.port: $REST_PORT
rest.bind-address: 0.0.0.0
taskmanager.bind-host: 0.0.0.0
taskmanager.numberOfTaskSlots: $SLOTS
parallelism.default: $((N * SLOTS))
jobmanager.memory.process.size: 4g
taskmanager.memory.process.size: 16g
io.tmp.dirs: ${TMPDIR:-/tmp}
EOF
export FLINK_CONF_DIR=$WORK/conf

PIDS=()
cleanup() {
    echo "stopping the job server, task managers, worker pools and the job manager"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait || true
}
trap cleanup EXIT

# ---- the job manager on the first node; a task manager and a worker pool on every node --------------------------
srun --nodes=1 --ntasks=1 -w "$HEAD" --overlap \
    "$FLINK_HOME/bin/jobmanager.sh" start-foreground &
PIDS+=($!)
# shellcheck disable=SC2016
srun --nodes="$N" --ntasks="$N" --ntasks-per-node=1 --overlap bash -c '
    source "$SIGFORGE_VENV/bin/activate"
    python -m apache_beam.runners.worker.worker_pool_main --service_port='"$WORKER_POOL_PORT"' &
    pool=$!
    trap "kill $pool" EXIT
    "$FLINK_HOME/bin/taskmanager.sh" start-foreground
' &
PIDS+=($!)

registered=0
echo "waiting for $N task managers at http://$HEAD:$REST_PORT"
for _ in $(seq 120); do
    registered=$(curl -sf "http://$HEAD:$REST_PORT/overview" | python -c 'import json,sys; print(json.load(sys.stdin)["taskmanagers"])' 2>/dev/null || echo 0)
    [ "$registered" -ge "$N" ] && break
    sleep 5
done
[ "$registered" -ge "$N" ] || { echo "only $registered of $N task managers registered"; exit 1; }

# ---- Beam's Flink job server beside the job manager --------------------------------------------------------------
java -jar "$JOB_SERVER_JAR" --flink-master="$HEAD:$REST_PORT" --job-port="$JOB_PORT" \
    --artifact-port=8098 --expansion-port=8097 --artifacts-dir="$WORK/artifacts" &
PIDS+=($!)
for _ in $(seq 60); do (echo > "/dev/tcp/localhost/$JOB_PORT") 2>/dev/null && break; sleep 2; done

# ---- the run: the worker pools already have sigforge, so nothing is staged (no --setup_file) --------------------
# A worker process per slot shares the node with the others: one numeric thread each (docs/running-at-scale.md).
sigforge run --config "$CONFIG" --input "$RAW" --output "$OUT" --set build.numeric_threads=1 \
    --profile run_configs/portable.yaml -- \
    --job_endpoint="localhost:$JOB_PORT" \
    --environment_type=EXTERNAL --environment_config="localhost:$WORKER_POOL_PORT" \
    --parallelism="$((N * SLOTS))" --sdk_worker_parallelism="$SLOTS"
sigforge audit "$OUT"
