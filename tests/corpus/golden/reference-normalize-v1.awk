# Independent reference of DESIGN.md §6 for the corpus (no ANSI in corpus).
{
  sub(/[ \t\r]+$/, "")
  if (pre && $0 != "" && substr($0,1,1) != "#") pre = 0
  if (pre && $0 ~ /^# ((jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\/[0-9][0-9]\/[0-9][0-9][0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) [0-9][0-9]:[0-9][0-9]:[0-9][0-9] by RouterOS [0-9]/) next
  if ($0 ~ /^# inactive time([^A-Za-z0-9_]|$)/ || $0 ~ /^# received packet from [^ \t]+ bad format/ || $0 ~ /^# poe-out status: / || $0 ~ /^# Firmware upgraded successfully/ || $0 ~ /^# [^ \t]+ not ready$/ || $0 ~ /^# Interface not running/ || $0 ~ /^#.+please restart the device in order to apply the new setting/) next
  if ($0 == "") { if (n) blank = 1; next }
  if (blank) { printf "\n"; blank = 0 }
  printf "%s\n", $0; n++
}
BEGIN { pre = 1 }
