#!/usr/bin/env bash
# Regenerates tests/data/hashcash-kat.tsv: stamps minted by the real `hashcash` 1.22 (Debian package
# `hashcash`) and the verdicts that same tool gives them under fixed clocks and policies.
# v0 stamps cannot be minted by hashcash 1.22 (it only checks them), so they are minted here with
# python3's hashlib (SHA-1 over the whole stamp, leading zero bits counted) and then checked by hashcash.
# Columns: stamp, now (UTC YYMMDDhhmmss), required bits, resource pattern, hashcash exit (0 ok, 1 rejected).
set -euo pipefail
cd "$(dirname "$0")"
out=hashcash-kat.tsv
command -v hashcash >/dev/null || { echo "needs hashcash (apt-get install hashcash)" >&2; exit 1; }
v=$(hashcash -V 2>&1 || true); [[ "$v" == *1.22* ]] || { echo "needs hashcash 1.22" >&2; exit 1; }

stamps=()
mint() { stamps+=("$(hashcash -mq -u "$@")"); }
# every minting date width, several bit counts, ext fields, several resource shapes
for b in 8 10 12 14 16 18 20; do
  mint -b "$b" -t 250101 -z 6 alice@example.org
  mint -b "$b" -t 2501011230 -z 10 bob@mail.example.com
  mint -b "$b" -t 250101123456 -z 12 carol@example.net
done
mint -b 10 -t 250101 -x 'a=1,2;b' dave@example.org
mint -b 10 -t 250101 -x 'id=0b1c;opt' plain-resource
mint -b 12 -t 241231 Mixed.Case@Example.ORG
mint -b 9 -t 250301 -z 6 future@example.org
mint -b 11 -t 241101 -z 6 old@example.org
mint -b 20 -t 250101 big@example.org

# v0 stamps: 0:DATE:RESOURCE:RAND, value = leading zero bits of SHA-1
while read -r date res bits; do
  stamps+=("$(python3 - "$date" "$res" "$bits" <<'PY'
import hashlib, sys, itertools, base64, os
date, res, bits = sys.argv[1], sys.argv[2], int(sys.argv[3])
salt = base64.b64encode(os.urandom(6)).decode()
for n in itertools.count():
    s = f"0:{date}:{res}:{salt}{n:x}"
    d = int.from_bytes(hashlib.sha1(s.encode()).digest(), "big")
    if d >> (160 - bits) == 0:
        print(s); break
PY
)")
done <<'V0'
250101 v0@example.org 10
2501011200 v0@example.org 12
241201 v0old@example.org 8
25 v0year@example.org 9
2501 v0month@example.org 9
25010112 v0hour@example.org 9
V0

set -f  # the resource patterns hold * wildcards
now_list=(250101120000 250102000000 250128000000 250131000000 250201000000 241230000000)
{
  printf '# stamp\tnow\tbits\tresource\thashcash_exit\n'
  for s in "${stamps[@]}"; do
    res=$(printf '%s' "$s" | awk -F: '{ print ($1=="0") ? $3 : $4 }')
    for now in "${now_list[@]}"; do
      for pol in "8 $res" "16 $res" "8 *@example.org" "8 other@example.org" "8 *@*.org" "8 al*@ex*.org"; do
        set -- $pol
        rc=0; hashcash -cq -y -u -t "$now" -b "$1" -r "$2" "$s" >/dev/null 2>&1 || rc=$?
        printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$now" "$1" "$2" "$rc"
      done
    done
  done
} > "$out"
echo "wrote $(grep -vc '^#' "$out") rows to $out"
