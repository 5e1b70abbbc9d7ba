#!/bin/bash
# Server overhead benchmark (issue 7): frames/s through infvsrd with `--model null` (identity
# x scale, nearest neighbour, no network) vs a bare `ffmpeg` decode -> scale -> encode of the
# same stream with the same output codec and settings, in the same run.
#   tests/bench/bench_server.sh BUILD_DIR [ROUNDS=3] [FRAMES=300] [SIZE1=640x360] [SIZE4=320x180]
# Input: FRAMES frames of testsrc2, 24 fps, H.264 in MPEG-TS (no audio): SIZE1 for scale 1,
# SIZE4 for scale 4 (320x180 -> 1280x720 output; 640x360 x4 = 1440p would take minutes per
# round with one x264 thread on a 2-core machine).
# Server: POST /v1/jobs {"scale":S,"output":{"container":"matroska","codec":"h264","crf":15}},
#   PUT the file (curl -T), GET /output until the end; timed from the PUT to the last output byte.
# Bare:  ffmpeg -i in.ts [-vf scale=iw*S:ih*S:flags=neighbor] -c:v libx264 -crf 15 -threads N
#   -rc-lookahead L -pix_fmt <the server output's> -f matroska out.mkv, with N, L and the pixel
#   format read from the daemon's own output (x264 SEI "threads=N", "rc_lookahead=L": the
#   streaming writer shortens x264's lookahead), so both encode with the same settings
#   (libx264 default preset, crf 15); the script checks the two x264 option strings match.
# Also "ffmpeg-rgb": the same ffmpeg command with the RGB round trip the engine contract
# imposes (decode -> rgb24 -> nearest x S in RGB -> yuv, swscale bicubic as the daemon's
# media reader/writer) — the share of the gap that is colour conversion, not serving.
# Scales 1 and 4; rounds alternate server/bare/bare-rgb (order rotated every round); medians
# are reported with the ratios server_fps / bare_fps (the goal, >= 0.9) and server / rgb.
set -euo pipefail
build=${1:?usage: bench_server.sh BUILD_DIR [ROUNDS] [FRAMES] [SIZE1] [SIZE4]}
rounds=${2:-3}
frames=${3:-300}
size1=${4:-640x360}
size4=${5:-320x180}
infvsrd=$build/infvsrd
[[ -x $infvsrd ]] || { echo "no $infvsrd" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-server.XXXXXX")
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

for s in 1 4; do
    size=size$s
    ffmpeg -nostdin -v error -f lavfi -i "testsrc2=size=${!size}:rate=24" -frames:v "$frames" \
        -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 48 -f mpegts "$work/in-$s.ts"
done

"$infvsrd" --listen 127.0.0.1:0 --spool-dir "$work/spool" --model null --instance bench \
    --max-upload-bytes 1073741824 >"$work/infvsrd.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 200); do
    port=$(grep -o 'listening port=[0-9]*' "$work/infvsrd.log" | head -1 | cut -d= -f2 || true)
    [[ -z $port ]] && port=$(grep -o '"msg": *"listening[^}]*"port": *[0-9]*' "$work/infvsrd.log" | grep -o '[0-9]*$' | head -1 || true)
    [[ -n $port ]] && break
    sleep 0.05
done
[[ -n $port ]] || { echo "infvsrd did not report its port:" >&2; cat "$work/infvsrd.log" >&2; exit 1; }
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/readyz") == 200 ]] && break
    sleep 0.1
done

now() { date +%s.%N; }
server_run() { # scale -> prints seconds; leaves the output in $work/server-S.mkv
    local s=$1 id t0 t1 code
    id=$(curl -sS -X POST -H 'Content-Type: application/json' \
        -d "{\"scale\":$s,\"output\":{\"container\":\"matroska\",\"codec\":\"h264\",\"crf\":15}}" \
        "$url/v1/jobs" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
    [[ -n $id ]] || { echo "job creation failed" >&2; exit 1; }
    t0=$(now)
    code=$(curl -sS -T "$work/in-$s.ts" -H 'Content-Type: video/mp2t' -o /dev/null -w '%{http_code}' "$url/v1/jobs/$id/input")
    [[ $code == 204 ]] || { echo "PUT -> $code" >&2; exit 1; }
    code=$(curl -sS -o "$work/server-$s.mkv" -w '%{http_code}' "$url/v1/jobs/$id/output")
    t1=$(now)
    [[ $code == 200 ]] || { echo "GET output -> $code" >&2; exit 1; }
    curl -sS -X DELETE -o /dev/null "$url/v1/jobs/$id"
    echo "$t1 - $t0" | bc -l
}
bare_run() { # scale pix_fmt x264_threads rc_lookahead [rgb] -> prints seconds
    local s=$1 pf=$2 th=$3 la=$4 rgb=${5:-} vf=() t0 t1
    [[ $s != 1 ]] && vf=(-vf "scale=iw*$s:ih*$s:flags=neighbor")
    if [[ -n $rgb ]]; then
        vf=(-vf "scale=flags=bicubic,format=rgb24,scale=iw*$s:ih*$s:flags=neighbor,scale=flags=bicubic,format=$pf")
    fi
    t0=$(now)
    ffmpeg -nostdin -v error -y -i "$work/in-$s.ts" "${vf[@]}" -c:v libx264 -crf 15 -threads "$th" \
        -rc-lookahead "$la" -pix_fmt "$pf" -f matroska "$work/bare-$s.mkv"
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
x264_options() { strings "$1" | grep -o 'options: .*' | head -1; }
probe() { ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=width,height,pix_fmt,nb_read_frames -of csv=p=0 "$1" | awk "NR==1"; }

echo "bench_server: $frames frames H.264/MPEG-TS in ($size1 for scale 1, $size4 for scale 4), H.264 crf 15 Matroska out, $rounds rounds, $(nproc) cores"
echo "daemon: $infvsrd --model null (pid $pid)"
for s in 1 4; do
    server_run "$s" >/dev/null # warm-up, and learn the server's output pixel format
    sp=$(probe "$work/server-$s.mkv")
    pf=$(echo "$sp" | cut -d, -f3)
    # the same x264 thread count as the daemon's writer (read from x264's SEI in its output)
    th=$(strings "$work/server-$s.mkv" | grep -o 'threads=[0-9]*' | head -1 | cut -d= -f2 || true)
    th=${th:-1}
    la=$(x264_options "$work/server-$s.mkv" | grep -o 'rc_lookahead=[0-9]*' | cut -d= -f2 || true)
    la=${la:-40}
    ts=() tb=() tr=()
    for r in $(seq 1 "$rounds"); do
        case $(( r % 3 )) in
        1) ts+=("$(server_run "$s")"); tb+=("$(bare_run "$s" "$pf" "$th" "$la")"); tr+=("$(bare_run "$s" "$pf" "$th" "$la" rgb)") ;;
        2) tb+=("$(bare_run "$s" "$pf" "$th" "$la")"); tr+=("$(bare_run "$s" "$pf" "$th" "$la" rgb)"); ts+=("$(server_run "$s")") ;;
        0) tr+=("$(bare_run "$s" "$pf" "$th" "$la" rgb)"); ts+=("$(server_run "$s")"); tb+=("$(bare_run "$s" "$pf" "$th" "$la")") ;;
        esac
    done
    bp=$(probe "$work/bare-$s.mkv")
    [[ $(x264_options "$work/server-$s.mkv") == "$(x264_options "$work/bare-$s.mkv")" ]] ||
        echo "WARNING: x264 settings differ: server [$(x264_options "$work/server-$s.mkv")] ffmpeg [$(x264_options "$work/bare-$s.mkv")]"
    ms=$(median "${ts[@]}") mb=$(median "${tb[@]}")
    fs=$(echo "$frames / $ms" | bc -l) fb=$(echo "$frames / $mb" | bc -l)
    printf 'scale %s: server %s (w,h,pix_fmt,frames) times %s s -> median %.3f s = %.1f frames/s\n' \
        "$s" "$sp" "$(printf '%.3f ' "${ts[@]}")" "$ms" "$fs"
    printf 'scale %s: ffmpeg %s (x264 threads %s, rc-lookahead %s, as the daemon) times %s s -> median %.3f s = %.1f frames/s\n' \
        "$s" "$bp" "$th" "$la" "$(printf '%.3f ' "${tb[@]}")" "$mb" "$fb"
    mr=$(median "${tr[@]}")
    fr=$(echo "$frames / $mr" | bc -l)
    printf 'scale %s: ffmpeg-rgb (same command + RGB round trip) times %s s -> median %.3f s = %.1f frames/s\n' \
        "$s" "$(printf '%.3f ' "${tr[@]}")" "$mr" "$fr"
    printf 'scale %s: ratio server/ffmpeg = %.3f (goal >= 0.9); server/ffmpeg-rgb = %.3f\n' "$s" \
        "$(echo "$fs / $fb" | bc -l)" "$(echo "$fs / $fr" | bc -l)"
    [[ $(echo "$sp" | cut -d, -f4) == "$frames" ]] || echo "WARNING: server output has $(echo "$sp" | cut -d, -f4) frames, expected $frames"
done
