# Shell helpers for tests that need a TPM: a software TPM (swtpm, socket mode, no kernel module)
# plus tpm2-tools. Source after tests/lib.sh (or alone):  . "$BULWARK_TOP/tests/lib-tpm.sh"
#
#   tpm_tools_missing           prints what is not installed (empty: all there); exit status 0
#                               when something is missing
#   tpm_start [DIR]             manufacture a TPM (swtpm_setup, SHA-256 bank) in DIR (default: a
#                               new temp dir) and serve it on a free 127.0.0.1 port P (control
#                               port P+1). Sets TPM_DIR TPM_PORT TPM_PID TPM_TCTI and exports
#                               TPM2TOOLS_TCTI. Stopped on exit (lib.sh's at_exit, else an EXIT
#                               trap) unless TPM_KEEP=1; TPM_KEEP=1 also writes $TPM_DIR/env.
#   tpm_stop                    stop swtpm, remove TPM_DIR
#   tpm_create_ak HANDLE [rsa|ecc]
#                               create an EK (transient) and an AK under it (RSA-2048/RSASSA or
#                               ECC P-256/ECDSA, SHA-256), persist the AK at HANDLE and write its
#                               public key to $TPM_DIR/ak-HANDLE.pem and .der (SPKI)
#   tpm_pcr_extend PCR TEXT     extend SHA-256 PCR with SHA-256(TEXT)
#   tpm_pcr_hex PCR             print the SHA-256 PCR value as lowercase hex

tpm_tools_missing() {
  local t miss=()
  for t in swtpm swtpm_setup tpm2_createek tpm2_createak tpm2_evictcontrol tpm2_flushcontext \
           tpm2_pcrextend tpm2_pcrread tpm2_readpublic tpm2_checkquote; do
    command -v "$t" >/dev/null 2>&1 || miss+=("$t")
  done
  [ -e /usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0 ] ||
    [ -n "$(ldconfig -p 2>/dev/null | grep libtss2-tcti-swtpm)" ] || miss+=(libtss2-tcti-swtpm0)
  [ ${#miss[@]} -gt 0 ] || return 1
  echo "${miss[*]}"
}

_tpm_port_free() { # port: both P and P+1 unused on TCP
  [ -z "$(ss -Htan "( sport = :$1 or sport = :$(($1 + 1)) )" 2>/dev/null)" ]
}

tpm_start() {
  local i port
  TPM_DIR=${1:-$(mktemp -d /tmp/bw-tpm.XXXXXX)}
  mkdir -p "$TPM_DIR"
  if [ "${TPM_KEEP:-0}" != 1 ]; then
    if declare -F at_exit >/dev/null; then at_exit tpm_stop; else trap tpm_stop EXIT; fi
  fi
  swtpm_setup --tpm2 --tpmstate "$TPM_DIR" --pcr-banks sha256 >"$TPM_DIR/setup.log" 2>&1 ||
    { cat "$TPM_DIR/setup.log" >&2; return 1; }
  if [ "${TPM_UNIX:-0}" = 1 ]; then
    rm -f "$TPM_DIR/pid"
    swtpm socket --tpm2 --tpmstate dir="$TPM_DIR" \
      --server type=unixio,path="$TPM_DIR/sock" --ctrl type=unixio,path="$TPM_DIR/sock.ctrl" \
      --flags startup-clear --pid file="$TPM_DIR/pid" --log file="$TPM_DIR/swtpm.log" \
      --daemon 2>>"$TPM_DIR/swtpm.log" || return 1
    TPM_PORT= TPM_PID=$(cat "$TPM_DIR/pid") TPM_TCTI="swtpm:path=$TPM_DIR/sock"
    export TPM2TOOLS_TCTI=$TPM_TCTI
    return 0
  fi
  # Other tests run in parallel: pick a random free pair, retry when someone else wins it.
  for i in $(seq 20); do
    port=$(( 20000 + (RANDOM * 2 + $$) % 40000 ))
    port=$(( port - port % 2 ))
    _tpm_port_free "$port" || continue
    rm -f "$TPM_DIR/pid"
    if swtpm socket --tpm2 --tpmstate dir="$TPM_DIR" \
         --server type=tcp,port="$port",bindaddr=127.0.0.1 \
         --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
         --flags startup-clear --pid file="$TPM_DIR/pid" --log file="$TPM_DIR/swtpm.log" \
         --daemon 2>>"$TPM_DIR/swtpm.log"; then
      TPM_PORT=$port TPM_PID=$(cat "$TPM_DIR/pid")
      TPM_TCTI="swtpm:host=127.0.0.1,port=$port"
      export TPM2TOOLS_TCTI=$TPM_TCTI
      [ "${TPM_KEEP:-0}" = 1 ] &&
        printf 'TPM_DIR=%s\nTPM_PORT=%s\nTPM_PID=%s\nTPM_TCTI=%s\n' \
          "$TPM_DIR" "$TPM_PORT" "$TPM_PID" "$TPM_TCTI" > "$TPM_DIR/env"
      return 0
    fi
  done
  echo "tpm_start: no free port for swtpm" >&2
  return 1
}

tpm_stop() {
  local pid=${TPM_PID:-} i
  [ -n "$pid" ] || { [ -n "${TPM_DIR:-}" ] && pid=$(cat "$TPM_DIR/pid" 2>/dev/null); }
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  [ -n "${TPM_DIR:-}" ] && case "$TPM_DIR" in /tmp/bw-tpm.*) rm -rf "$TPM_DIR" ;; esac
  TPM_PID=
}

# swtpm has no resource manager: flush what each tool leaves loaded, or the TPM runs out of slots.
_tpm_flush() { tpm2_flushcontext -t >/dev/null 2>&1; tpm2_flushcontext -s >/dev/null 2>&1; true; }

tpm_create_ak() {
  local handle=$1 alg=${2:-rsa} d=$TPM_DIR scheme
  case "$alg" in rsa) scheme=rsassa ;; ecc) scheme=ecdsa ;; *) return 2 ;; esac
  tpm2_createek -c "$d/ek.ctx" -G rsa -u "$d/ek.pub" >/dev/null || return 1
  tpm2_createak -C "$d/ek.ctx" -c "$d/ak.ctx" -G "$alg" -g sha256 -s "$scheme" \
    -u "$d/ak-$handle.pub" -f pem >/dev/null || { _tpm_flush; return 1; }
  _tpm_flush
  tpm2_evictcontrol -C o -c "$d/ak.ctx" "$handle" >/dev/null || return 1
  _tpm_flush
  tpm2_readpublic -c "$handle" -f pem -o "$d/ak-$handle.pem" >/dev/null &&
    tpm2_readpublic -c "$handle" -f der -o "$d/ak-$handle.der" >/dev/null
}

tpm_pcr_extend() {
  tpm2_pcrextend "$1:sha256=$(printf '%s' "$2" | sha256sum | cut -d' ' -f1)"
}

tpm_pcr_hex() {
  tpm2_pcrread "sha256:$1" | awk '/: 0x/ { sub(/.*0x/, ""); print tolower($0) }'
}
