#!/bin/sh
# diagnose.sh runs, in one go, what tells why a gateway on a host with
# many CPUs runs ONNX Runtime slower per row than the ort-floor, and which
# setting helps (BENCHMARKS.md, "Reading the 16-core gap"):
#
#   1. bench neighbors: ranker on CPU 0, with as many other CPUs busy as
#      the gateway has besides it running the same model, then every
#      other CPU running an integer loop (the clock a busy machine
#      allows), then the gateway's others running loopback HTTP;
#   2. bench suite for each model on a split of the CPUs, as is, then
#      with the variants that each answer one question:
#      ranker --runtime-cpus 1 (ONNX Runtime on a CPU of its own) and
#      ranker with GOMAXPROCS one below the gateway's CPUs (both only
#      when the gateway has 2 CPUs or more), ctr --instances 2 (the one
#      batch worker as the limit), ctr --encoding binary (JSON decoding's
#      share) and ctr --runtime-cpus 1 (the model's weights kept in one
#      CPU's caches; 2 CPUs or more);
#   3. a CPU profile of a gateway serving ctr on the split
#      (ctr-profile.pprof), the breakdown BENCHMARKS.md's session-9
#      section reads.
#
# Run it from the repository root after "make build", with nothing else
# busy: about 6 to 7 minutes on 16 CPUs. Every run's output, its JSON report,
# and the host's description go under OUT; the last lines of each are
# printed as it ends.
#
#   bench/diagnose.sh [BINARY]
#
# Environment: OUT (default diagnose-<date>-<time>), SERVER_CPUS (the
# gateway's CPUs; default half of them), MODELS (default "ranker ctr"),
# DURATION and WARMUP of each step (default 2s and 1s), REPEAT (rounds of
# each model's first suite, as is; default 1).
set -eu

bin=${1:-./bin/infergate}
ncpu=$(nproc)
s=${SERVER_CPUS:-$((ncpu / 2))}
out=${OUT:-diagnose-$(date +%Y%m%d-%H%M%S)}
models=${MODELS:-ranker ctr}
dur=${DURATION:-2s}
warm=${WARMUP:-1s}
repeat=${REPEAT:-1}

if [ ! -x "$bin" ]; then
	echo "diagnose.sh: $bin is not an executable; run make build, or give the binary" >&2
	exit 2
fi
if [ "$s" -lt 1 ] || [ "$s" -ge "$ncpu" ]; then
	echo "diagnose.sh: SERVER_CPUS=$s; give the gateway at least 1 and fewer than this host's $ncpu CPUs" >&2
	exit 2
fi
mkdir -p "$out"

# run NAME COMMAND...: COMMAND's output goes to OUT/NAME.txt; a failure is
# recorded there and the script goes on to the next run.
run() {
	name=$1
	shift
	echo "== $name: $*"
	start=$(date +%s)
	if "$@" >"$out/$name.txt" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	echo "(exit $rc after $(($(date +%s) - start))s)" >>"$out/$name.txt"
	tail -n 20 "$out/$name.txt"
}

{
	date -u
	"$bin" version
	uname -a
	lscpu || true
	echo "steal and other /proc/stat CPU times at the start:"
	head -n 1 /proc/stat
} >"$out/host.txt" 2>&1

# neighbors measures CPU 0. With the same model and with loopback HTTP
# beside it, as many other CPUs are busy as the gateway has besides CPU 0
# (1 to SERVER_CPUS-1; all others when it has one): what its own threads
# share with ONNX Runtime's. With the integer loop, every other CPU is:
# the clock when the whole machine is busy, as the load generator's CPUs
# are in every gateway run, though not while the ort-floor runs.
neighbors=
if [ "$s" -ge 2 ]; then
	neighbors="--neighbors 1-$((s - 1))"
fi
# shellcheck disable=SC2086 # neighbors is a flag and its value, or nothing
run neighbors-ort "$bin" bench neighbors --cpu 0 --model ranker --batch 32 --load ort $neighbors --json "$out/neighbors-ort.json"
run neighbors-spin "$bin" bench neighbors --cpu 0 --model ranker --batch 32 --load spin --json "$out/neighbors-spin.json"
# shellcheck disable=SC2086
run neighbors-http "$bin" bench neighbors --cpu 0 --model ranker --batch 32 --load http $neighbors --json "$out/neighbors-http.json"

# suite NAME MODEL [FLAGS...]: the suite on the split, with FLAGS, and
# with suite_env (NAME=VALUE words, or nothing) in its environment.
suite_env=
suite() {
	name=$1
	model=$2
	shift 2
	# shellcheck disable=SC2086 # suite_env is split into its words
	run "$name" env $suite_env "$bin" bench suite --server-cpus "$s" --models "$model" \
		--duration "$dur" --warmup "$warm" --quiet --json "$out/$name.json" "$@"
}
for m in $models; do
	suite "$m" "$m" --repeat "$repeat"
	case $m in
	ranker)
		if [ "$s" -ge 2 ]; then
			suite ranker-runtime-cpus ranker --runtime-cpus 1
			suite_env="GOMAXPROCS=$((s - 1))"
			suite ranker-gomaxprocs ranker
			suite_env=
		fi
		;;
	ctr)
		suite ctr-instances-2 ctr --instances 2
		suite ctr-binary ctr --encoding binary
		if [ "$s" -ge 2 ]; then
			suite ctr-runtime-cpus ctr --runtime-cpus 1
		fi
		;;
	esac
done

# profile_ctr takes a 3 s CPU profile of a gateway serving ctr at 64
# connections, the gateway on CPUs 0 to SERVER_CPUS-1 and the load on the
# rest (the suite's split on a host of one thread per core), into
# OUT/ctr-profile.pprof: where a request's CPU goes (go tool pprof -top
# -cum, anywhere; the profile carries its symbols). Ports 18391 and 18392.
profile_ctr() {
	tmp=$(mktemp -d)
	"$bin" demo-models --out "$tmp/models" >/dev/null 2>&1
	taskset -c "0-$((s - 1))" "$bin" serve --models "$tmp/models" --data "$tmp/data" \
		--http 127.0.0.1:18391 --pprof-addr 127.0.0.1:18392 >"$out/ctr-profile-serve.txt" 2>&1 &
	spid=$!
	i=0
	until curl -sf 127.0.0.1:18391/v2/health/ready >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 300 ]; then
			echo "== ctr-profile: the gateway was not ready in 30 s; see ctr-profile-serve.txt"
			kill "$spid" 2>/dev/null
			wait "$spid" 2>/dev/null
			rm -rf "$tmp"
			return
		fi
		sleep 0.1
	done
	echo "== ctr-profile: bench --model ctr --concurrency 64 --duration 5s, profile of its seconds 2.5 to 5.5"
	taskset -c "$s-$((ncpu - 1))" "$bin" bench --target http://127.0.0.1:18391 --model ctr \
		--concurrency 64 --duration 5s --warmup 1s --quiet >"$out/ctr-profile-bench.txt" 2>&1 &
	bpid=$!
	sleep 2.5
	curl -s -o "$out/ctr-profile.pprof" '127.0.0.1:18392/debug/pprof/profile?seconds=3'
	wait "$bpid"
	kill "$spid"
	wait "$spid" 2>/dev/null
	rm -rf "$tmp"
	tail -n 3 "$out/ctr-profile-bench.txt"
}
case " $models " in
*" ctr "*)
	if command -v curl >/dev/null && command -v taskset >/dev/null; then
		profile_ctr
	else
		echo "== ctr-profile: skipped (needs curl and taskset)"
	fi
	;;
esac

{
	echo "at the end:"
	head -n 1 /proc/stat
} >>"$out/host.txt"
echo "results in $out"
