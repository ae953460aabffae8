# t_completion.sh — the command line as its users run it: shell completion (bash driven through
# its real `complete` machinery, zsh and fish through theirs), names completed from a real API
# server, a cluster that is down, and kcmdr installed by `make install` as a kubectl plugin and
# run by the real kubectl. None of this depends on the velero.io CRD shape, so no [upstream] twin.

# cmpl_bin: a directory on PATH where `kcmdr` is this build (the scripts call back the program the
# command line names, as a user's PATH finds it)
cmpl_bin() {
  mkdir -p pbin
  ln -sf "$KCMDR" pbin/kcmdr
  PATH=$PWD/pbin:$PATH
}

# bash_complete WORD...: what bash completion offers when the cursor is at the end of the last
# WORD ('' for a new word): the script from `kcmdr completion bash` sourced in a clean bash, its
# function found through `complete -p kcmdr` and called as bash calls it (COMP_WORDS, COMP_CWORD,
# COMP_LINE, COMP_POINT; arguments: command, current word, previous word). Prints COMPREPLY sorted,
# one a line. Whatever else the completion writes (stdout or stderr) goes to ./bash_complete.noise.
bash_complete() {
  timeout 5 bash --norc --noprofile -c '
    source <("$0" completion bash) || exit 1
    spec=$(complete -p kcmdr) || exit 1
    fn=$(sed -E "s/.* -F ([^ ]+) .*/\1/" <<<"$spec")
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    exec 3>&1 >>bash_complete.noise 2>&1
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort >&3' "$KCMDR" "$@"
}

# cmpl_backups NS NAME...: Velero Backup objects as a sync would create them (no controller: the
# objects are what completion lists)
cmpl_backups() {
  local ns=$1 n; shift
  for n in "$@"; do
    printf 'apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: %s, namespace: %s}\nspec: {ttl: 720h0m0s}\n---\n' "$n" "$ns"
  done | kubectl apply -f - >/dev/null
}

# tried: `kcmdr backup de<TAB>`, flags, and backup names against the main API server, where
# namespace cmpl-<pid> holds Backups cmpl-alpha-1, cmpl-alpha-2, cmpl-beta, a second namespace
# holds cmpl-alpha-elsewhere and a ManagementBackup cmpl-alpha-mb exists (cluster-scoped).
# Asserted: subcommands describe and delete; the flags of `backup create` from its table; names
# from the -n namespace only; ManagementBackups where NAME may be one (describe) but not for
# delete (Backups only); a name already on the line is not offered again; --from-backup of
# restore create completes Backups, -n completes namespaces; nothing written outside COMPREPLY.
test_completion_bash_verbs_flags_and_backup_names() {
  cmpl_bin
  local ns=cmpl-$$ ns2=cmpl-$$-b
  kubectl create namespace "$ns" >/dev/null
  kubectl create namespace "$ns2" >/dev/null
  cmpl_backups "$ns" cmpl-alpha-1 cmpl-alpha-2 cmpl-beta
  cmpl_backups "$ns2" cmpl-alpha-elsewhere
  kubectl apply -f - >/dev/null <<YAML
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: cmpl-alpha-mb-$$}
spec: {}
YAML
  assert_eq "$(printf 'delete\ndescribe')" "$(bash_complete kcmdr backup de)" "kcmdr backup de<TAB>"
  assert_eq "backup" "$(bash_complete kcmdr ba)" "kcmdr ba<TAB>"
  assert_eq "$(printf -- '--schedule')" "$(bash_complete kcmdr backup create --sch)" "backup create --sch<TAB>"
  assert_eq "--storage-location" "$(bash_complete kcmdr backup create x --wait --st)" "after a flag and NAME"
  assert_eq "$(printf 'cmpl-alpha-1\ncmpl-alpha-2\ncmpl-alpha-mb-%s' $$)" \
    "$(bash_complete kcmdr -n "$ns" backup describe cmpl-al)" "backup describe cmpl-al<TAB> in -n $ns"
  assert_eq "$(printf 'cmpl-alpha-1\ncmpl-alpha-2')" \
    "$(bash_complete kcmdr backup delete --namespace "$ns" cmpl-al)" "backup delete: Backups only"
  assert_eq "$(printf 'cmpl-alpha-2\ncmpl-alpha-mb-%s' $$)" \
    "$(bash_complete kcmdr backup describe -n "$ns" cmpl-alpha-1 cmpl-al)" "a name given already"
  assert_eq "cmpl-beta" "$(bash_complete kcmdr restore create -n "$ns" --from-backup cmpl-b)" "--from-backup"
  assert_eq "$(printf '%s\n%s' "$ns" "$ns2")" "$(bash_complete kcmdr backup get -n cmpl-$$)" "-n NAMESPACE"
  assert_eq "cmpl-alpha-elsewhere" "$(bash_complete kcmdr backup delete -n "$ns2" cmpl-)" "the other namespace"
  [ ! -s bash_complete.noise ] || fail "completion wrote to the terminal: $(cat bash_complete.noise)"
}

# help_flags ARGS...: the flags `kcmdr ARGS --help` lists in its option lines (indented lines
# that start with '-', up to the two-space gap before the description), sorted
help_flags() {
  "$KCMDR" "$@" --help | grep -E '^ +-[-a-zA-Z0-9]' | sed -E 's/^ +//; s/  .*//' |
    grep -oE -- '(^|[ ,/])--?[a-zA-Z0-9][-a-zA-Z0-9]*' | sed -E 's/^[ ,/]//' | sort -u || true
}

# tried: every verb and subcommand that completion offers, its flags from `__complete ... -` set
# against the flags its own --help lists (for backup and restore the completion comes from the
# flag tables the parser uses, so this is the check that help and parser agree), and the global
# flags against `kcmdr --help`. Asserted: each flag --help lists is completed; each flag completed
# that is not a global one is in --help; a verb whose table gains a flag without help fails here.
test_completion_flags_agree_with_help() {
  local globals verb sub comp help extra missing
  globals=$("$KCMDR" __complete - | grep -v '^:' | sort -u)
  assert_eq "$(help_flags)" "$globals" "global flags: completion vs kcmdr --help"
  for verb in $("$KCMDR" __complete '' | grep -v '^:'); do
    local subs; subs=$("$KCMDR" __complete "$verb" '' | grep -v '^:' || true)
    [ "$verb" = completion ] && subs=
    for sub in ${subs:-""}; do
      comp=$("$KCMDR" __complete $verb $sub - | grep -v '^:' | sort -u)
      help=$(help_flags $verb $sub)
      [ -n "$help" ] || [ "$verb" = version ] || [ "$verb" = completion ] || fail "$verb $sub --help lists no flags"
      missing=$(comm -23 <(echo "$help") <(echo "$comp") | tr '\n' ' ')
      extra=$(comm -13 <(echo "$help") <(echo "$comp") | comm -23 - <(echo "$globals") | tr '\n' ' ')
      [ -z "${missing// }" ] || fail "kcmdr $verb $sub: --help lists $missing but completion does not offer it"
      [ -z "${extra// }" ] || fail "kcmdr $verb $sub: completion offers $extra which --help does not list"
    done
  done
}

# tried: completing a backup name while the cluster is down, through bash completion: (a) the
# kubeconfig's server is a port nothing listens on; (b) a server that accepts the connection and
# never answers (a listening socket nobody reads), the case that would hang a shell; (c) the
# kubeconfig's user is an exec credential plugin that writes to stderr and never answers (a
# login waiting for a browser). Asserted:
# each completion returns within the 5 s `timeout` bash_complete has (measured: under 4 s), offers
# nothing and writes nothing to the terminal.
test_completion_cluster_down_is_quick_and_silent() {
  cmpl_bin
  local port start secs srv
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  sed -E "s#server: .*#server: https://127.0.0.1:$port#" "$KUBECONFIG" > refused.kubeconfig
  python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True); time.sleep(60)' > silent.port &
  srv=$!
  wait_until 5 test -s silent.port
  sed -E "s#server: .*#server: https://127.0.0.1:$(cat silent.port)#" "$KUBECONFIG" > silent.kubeconfig
  printf '#!/bin/sh\necho "plugin: open a browser to log in" >&2\nexec sleep 30\n' > hung-plugin
  chmod +x hung-plugin
  python3 - "$KUBECONFIG" "$PWD/hung-plugin" > hung.kubeconfig <<'PY'
import sys, yaml
k = yaml.safe_load(open(sys.argv[1]))
for u in k["users"]:
    u["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.argv[2], "interactiveMode": "Never"}}
yaml.safe_dump(k, sys.stdout)
PY
  for kc in refused silent hung; do
    start=$(date +%s%N)
    out=$(bash_complete kcmdr --kubeconfig "$kc.kubeconfig" backup describe '') || { kill "$srv"; fail "$kc: completion did not return within 5 s"; }
    secs=$(( ($(date +%s%N) - start) / 1000000 ))
    assert_eq "" "$out" "$kc: candidates"
    [ "$secs" -lt 4000 ] || { kill "$srv"; fail "$kc: completion took ${secs} ms"; }
    echo "    $kc: ${secs} ms"
  done
  kill "$srv"
  [ ! -s bash_complete.noise ] || fail "completion wrote to the terminal: $(cat bash_complete.noise)"
}

# tried: the zsh and fish scripts: both parse (zsh -n, fish -n); fish's own completion engine
# (`complete -C`) on `kcmdr backup de` and `kcmdr completion `; zsh's function called as compsys
# calls it (words, CURRENT) with compadd recording what it is given; `kcmdr backup get -` in
# both. Asserted: describe and delete; bash zsh fish; exactly the flags __complete gives, -n
# included (fish's `echo -n` swallowed it).
test_completion_zsh_and_fish_scripts() {
  cmpl_bin
  "$KCMDR" completion zsh > kcmdr.zsh
  "$KCMDR" completion fish > kcmdr.fish
  zsh -n kcmdr.zsh || fail "zsh -n: the zsh script does not parse"
  fish -n kcmdr.fish || fail "fish -n: the fish script does not parse"
  got=$(timeout 5 fish --no-config -c 'source kcmdr.fish; complete -C "kcmdr backup de"' | sort | tr '\n' ' ')
  assert_eq "delete describe " "$got" "fish: kcmdr backup de<TAB>"
  got=$(timeout 5 fish --no-config -c 'source kcmdr.fish; complete -C "kcmdr completion "' | sort | tr '\n' ' ')
  assert_eq "bash fish zsh " "$got" "fish: kcmdr completion <TAB>"
  got=$(timeout 5 zsh -f -c 'compadd() { print -rl -- "$@" }; compdef() { :; }; source ./kcmdr.zsh
    words=(kcmdr backup de); CURRENT=3; _kcmdr' | grep -v '^--$' | sort | tr '\n' ' ')
  assert_eq "delete describe " "$got" "zsh: kcmdr backup de<TAB>"
  # flags: every one __complete gives, "-n" and "-o" too (fish's `echo -n` printed nothing)
  want=$("$KCMDR" __complete backup get - | grep -v '^:' | sort | tr '\n' ' ')
  assert_contains "$want" "-n " "__complete offers -n"
  got=$(timeout 5 fish --no-config -c 'source kcmdr.fish; complete -C "kcmdr backup get -"' | sort | tr '\n' ' ')
  assert_eq "$want" "$got" "fish: kcmdr backup get -<TAB>"
  got=$(timeout 5 zsh -f -c 'compadd() { print -rl -- "$@" }; compdef() { :; }; source ./kcmdr.zsh
    words=(kcmdr backup get -); CURRENT=4; _kcmdr' | grep -v '^--$' | sort | tr '\n' ' ')
  assert_eq "$want" "$got" "zsh: kcmdr backup get -<TAB>"
}

# tried: `make install` into a DESTDIR, its bin on PATH; then the real kubectl runs the plugin:
# `kubectl kcmdr backup get -n NS` against the main API server with Backups in NS, `kubectl kcmdr
# --help` and `kubectl kcmdr backup describe --help`, and kubectl's own plugin completion
# (`kubectl __complete kcmdr ...`, through kubectl_complete-kcmdr; kubectl 1.26+). Asserted: the
# Backups listed; usage says `kubectl kcmdr`, never `Usage: kcmdr`; kubectl completes
# describe/delete and a Backup name; the installed bash completion file is the script.
test_kubectl_plugin_backup_get_and_usage() {
  local ns=plug-$$ dest=$PWD/dest
  make -s -C "$REPO" install BIN="$KCMDR" -o "$KCMDR" DESTDIR="$dest" PREFIX=/usr >/dev/null
  [ -L "$dest/usr/bin/kubectl-kcmdr" ] || fail "make install made no kubectl-kcmdr"
  cmp -s "$dest/usr/share/bash-completion/completions/kcmdr" <("$KCMDR" completion bash) ||
    fail "the installed bash completion is not kcmdr completion bash"
  PATH=$dest/usr/bin:$PATH
  kubectl create namespace "$ns" >/dev/null
  cmpl_backups "$ns" plug-one plug-two
  expect_exit 0 kubectl kcmdr backup get -n "$ns"
  assert_contains "$OUT" "plug-one" "kubectl kcmdr backup get"
  assert_contains "$OUT" "plug-two" "kubectl kcmdr backup get"
  expect_exit 0 kubectl kcmdr --help
  assert_contains "$OUT" "Usage: kubectl kcmdr [global flags] VERB" "kubectl kcmdr --help"
  case $OUT in *"Usage: kcmdr"*) fail "kubectl kcmdr --help says 'Usage: kcmdr': $OUT";; esac
  expect_exit 0 kubectl kcmdr backup describe --help
  assert_contains "$OUT" "Usage: kubectl kcmdr backup describe NAME" "kubectl kcmdr backup describe --help"
  expect_exit 2 kubectl kcmdr backup describe
  assert_contains "$OUT" "Usage: kubectl kcmdr backup describe NAME" "usage on a usage error"
  expect_exit 0 kcmdr --help
  assert_contains "$OUT" "Usage: kcmdr [global flags] VERB" "kcmdr --help as itself"
  minor=$(kubectl version --client -o json | jq -r '.clientVersion.minor' | tr -dc 0-9)
  if [ "${minor:-0}" -ge 26 ]; then
    got=$(kubectl __complete kcmdr backup de 2>/dev/null | tr '\n' ' ')
    assert_eq "describe delete :4 " "$got" "kubectl __complete kcmdr backup de"
    got=$(kubectl __complete kcmdr backup describe -n "$ns" plug-o 2>/dev/null | tr '\n' ' ')
    assert_eq "plug-one :4 " "$got" "kubectl __complete kcmdr backup describe -n $ns plug-o"
  else
    echo "    kubectl 1.$minor has no plugin completion (1.26+): kubectl __complete not tried"
  fi
}
