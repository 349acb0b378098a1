#!/usr/bin/env bash
# Regenerates domain/tests/fixtures/rpm-vercmp-golden.txt: pairs of real kernel versions and
# releases (plus tricky strings), each with the answer of the real `rpm` (Debian package `rpm`).
# Not run by the build or the tests; the output is committed so the tests need no rpm.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=$(mktemp)
python3 - "$pairs" <<'PY'
import random, sys
random.seed(7)
vr = [l.split()[0] for l in open('domain/tests/fixtures/rhel-kernels.txt') if not l.startswith('#')]
parts = sorted({p for v in vr for p in v.split('-', 1)})
tricky = ['1.0~rc1', '1.0', '1.0^git1', '1.0^', '1.0~', '553.el8_10', '553.5.1.el8_10', '553.el8_9', '1160.el7',
          '1160.0.1.el7', '80.el8', '80.0.1.el8', '1.fc17', '1b.fc17', '10.0001', '10.1', '2_0', '2.0', 'a+', '+a',
          '5.14.0', '5.14', '4.18.0', '477.10.1.el8_8', '477.10.1.el8_10', '6.10.0~rc3', '6.10.0', 'xyz.4', '8']
out = []
for a in tricky:
    for b in tricky:
        out.append((a, b))
for _ in range(3000):
    out.append((random.choice(parts), random.choice(parts)))
with open(sys.argv[1], 'w') as f:
    for a, b in out:
        f.write(f"{a} {b}\n")
PY
rpm --eval "%{lua:
for line in io.lines('$pairs') do
  local a, b = line:match('^(%S+) (%S+)$')
  print(a .. ' ' .. b .. ' ' .. rpm.vercmp(a, b) .. '\n')
end}" | grep -v '^$' > domain/tests/fixtures/rpm-vercmp-golden.txt
rm -f "$pairs"
wc -l domain/tests/fixtures/rpm-vercmp-golden.txt

# The real kernel list sorted by rpm itself, per EL major release (ties broken by the string).
rpm --eval "%{lua:
local groups = {}
for line in io.lines('domain/tests/fixtures/rhel-kernels.txt') do
  local vr, dist = line:match('^(%S+) (%S+)')
  if vr and line:sub(1, 1) ~= '#' then
    local major = dist:match('^(el%d+)')
    groups[major] = groups[major] or {}
    table.insert(groups[major], vr)
  end
end
for _, major in ipairs({'el7', 'el8', 'el9'}) do
  local list = groups[major]
  table.sort(list, function(a, b)
    local c = rpm.vercmp(a, b)
    if c ~= 0 then return c < 0 end
    return a < b
  end)
  for _, vr in ipairs(list) do print(major .. ' ' .. vr .. '\n') end
end}" | grep -v '^$' > domain/tests/fixtures/rhel-kernels-rpm-sorted.txt
wc -l domain/tests/fixtures/rhel-kernels-rpm-sorted.txt
