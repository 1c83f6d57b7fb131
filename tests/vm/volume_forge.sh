#!/usr/bin/env bash
# A malicious host forges LUKS2 headers where libcryptsetup looks for them but the allow-list did
# not: secondary headers inside a keyslot area or after the JSON's NUL, behind broken checksums;
# keyslot-less headers that are not a format cut short; headers only libcryptsetup refuses. Every
# one is refused (exit 9) naming why, nothing mapped, the disk unchanged.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/volume_lib"
. "$(dirname "$0")/volume_tamper_lib"

# --- keyslot-less headers: only this volume's "prepared" header, otherwise valid, is a format cut short ---
nokeys='del j["keyslots"]["0"]; j["digests"]["0"]["keyslots"] = []'
refused "keyslot-less header of another volume" "names volume 'pvc-other', not 'pvc-t'" \
  "$nokeys; j['tokens']['0']['volume_id'] = 'pvc-other'; j['tokens']['0']['state'] = 'prepared'"
refused "keyslot-less header in state ready" "only a 'prepared' header is a format cut short" "$nokeys"
refused "keyslot-less prepared header with reencryption requirements" "config.requirements" \
  "$nokeys; j['tokens']['0']['state'] = 'prepared'; j['config']['requirements'] = {'mandatory': ['online-reencrypt-v2']}"
refused "keyslots that are not an object" "keyslots missing or not an object" 'j["keyslots"] = []'

# --- headers the allow-list passes but libcryptsetup refuses: FAILED_PRECONDITION (9) too ---
refused "two keyslots sharing one area (libcryptsetup refuses it)" "libcryptsetup refused" \
  'j["keyslots"]["1"] = json.loads(json.dumps(j["keyslots"]["0"])); j["digests"]["0"]["keyslots"] = ["0", "1"]'

# --- forged secondary headers: libcryptsetup scans 16 KiB ... 4 MiB for one when the primary's
# checksum is wrong. Each control shows libcryptsetup itself would load the forgery. ---
forged='j["segments"]["0"]["offset"] = "0"'
restore; edit --plant 65536 "$good" "$forged" && edit --break "$good"
check "control: libcryptsetup loads the header forged inside keyslot 0's area (data offset 0)" \
  sh -c "cryptsetup luksDump $good | grep -q 'offset: 0 \[bytes\]'"
refused_by "forged header inside a keyslot area, both checksums broken" "checksum is wrong" \
  "edit --plant 65536 \"\$good\" '$forged' && edit --break \"\$good\""
restore; edit --grow "$good"
vol stage --id pvc-t --device "$good" --key-file $T/key > /dev/null 2> $T/ctl.err; rc=$?
check "control: the header moved to 4 MiB metadata is still a valid bulwark header (exit $rc)" test $rc -eq 0
vol unstage --id pvc-t
edit --plant 16384 "$good" "$forged" && edit --break "$good"
check "control: libcryptsetup loads the header forged after the JSON's NUL (data offset 0)" \
  sh -c "cryptsetup luksDump $good | grep -q 'offset: 0 \[bytes\]'"
refused_by "forged header after the JSON's NUL, both checksums broken" "checksum is wrong" \
  "edit --grow \"\$good\" && edit --plant 16384 \"\$good\" '$forged' && edit --break \"\$good\""
# (only the primary copy carries the planted bytes: the two copies' JSON areas then differ,
# which is refused before the tail is looked at; the case below has both copies agree)
refused_by "forged header after the JSON's NUL, checksums resealed over it" "JSON metadata differ" \
  "edit --grow \"\$good\" && edit --plant 16384 \"\$good\" '$forged' && edit --reseal \"\$good\""
refused_by "bytes after the JSON's NUL, valid checksums" "after the JSON's end" "edit --tail \"\$good\""
refused_by "the primary's checksum broken (libcryptsetup would take the secondary)" "primary header's checksum is wrong" \
  "edit --break \"\$good\" && edit --reseal-secondary \"\$good\""

echo "# time in the guest: ${SECONDS}s"
finish
