# t_pod.sh — kcmdr as its users run it: the container image `make image` builds
# ($KCMDR_IMAGE, default build/kcmdr-image.oci.tar, made from $KCMDR_IMAGE_BIN, default
# bin/kcmdr) and the binary inside it, run as the Pod that `kcmdr install` describes would run it.
#
# No kubelet here, and no container can start: podman 4.3 with crun and runc is installed, but
# every `podman run` of this image fails in the runtime's init ("setrlimit RLIMIT_NOFILE" /
# "RLIMIT_NPROC: Operation not permitted": the machine withholds CAP_SYS_RESOURCE, tried with
# --ulimit host and explicit values; `podman load` of the archive works and names it
# docker.io/library/kcmdr:VERSION). So the test is the runtime: it unpacks the image with umoci as a runtime does, and starts the
# image's entrypoint with the Deployment's args in mount, PID and UTS namespaces of its own (unshare)
# with the root filesystem read-only, chroot'ed into the image root, as uid/gid 65532 with no
# capabilities (bounding set empty), no_new_privs, /proc and runc's default /dev, the
# service-account volume and the environment the kubelet provides, and /tmp as the emptyDir.
# The network namespace is the host's (the API server and the gateway listen on 127.0.0.1).

IMAGE=${KCMDR_IMAGE:-$REPO/build/kcmdr-image.oci.tar}
IMAGE_BIN=${KCMDR_IMAGE_BIN:-$REPO/bin/kcmdr}

# tried: a second build of the image from the same binary and commit, in another directory, with
# another umask and time zone, files copied at another time. Asserted: the same manifest digest
# and byte for byte the same archive as `make image`'s; the binary holds no path of the checkout
# (debug info: its build ID would differ per directory); skopeo accepts the archive (copy to dir:)
# and reads the config: entrypoint, default command, user 65532, OCI labels with the binary's
# version and the commit; the layer holds exactly the binary, the libraries ldd names (loader
# included), a copyright file per package, the CA bundle, zoneinfo, passwd/group and an empty
# /tmp, every entry owned by 0:0 with mtime SOURCE_DATE_EPOCH, and no shell.
test_pod_image_reproducible_and_complete() {
  [ -s "$IMAGE" ] || fail "$IMAGE missing: make image"
  # across checkouts: the binary records no path of this one (the build ID hashes the debug
  # sections, so a comp_dir of /home/a/kcmdr vs /work/kcmdr made two builds of one commit differ)
  ! readelf --debug-dump=info "$IMAGE_BIN" 2>/dev/null | grep -F -m1 "$REPO" ||
    fail "$IMAGE_BIN records the checkout's path (built before -ffile-prefix-map? make clean all)"
  local sde; sde=$(cd "$REPO" && git log -1 --format=%ct)
  (umask 077; TZ=Pacific/Kiritimati "$REPO/scripts/image" --bin "$IMAGE_BIN" --out "$PWD/again.oci.tar" --work "$PWD/w2") > build2.log
  digest() { tar -xOf "$1" index.json | jq -r '.manifests[0].digest'; }
  assert_eq "$(digest "$IMAGE")" "$(digest again.oci.tar)" "manifest digest of a second build (if make image is older than bin/kcmdr: make image)"
  cmp -s "$IMAGE" again.oci.tar || fail "the second build's archive differs from the first's"
  skopeo copy -q "oci-archive:$IMAGE" dir:copied || fail "skopeo copy oci-archive: -> dir: refused it"
  cfg=$(skopeo inspect --config "oci-archive:$IMAGE")
  assert_eq '["/usr/bin/kcmdr"]|["controller"]|65532:65532' "$(jq -c -j '.config.Entrypoint, "|", .config.Cmd, "|", .config.User' <<<"$cfg")" "entrypoint, cmd, user"
  version=$("$IMAGE_BIN" version | sed -n '1s/^kcmdr //p')
  assert_eq "$version" "$(jq -r '.config.Labels["org.opencontainers.image.version"]' <<<"$cfg")" "version label"
  assert_eq "$(cd "$REPO" && git rev-parse HEAD)" "$(jq -r '.config.Labels["org.opencontainers.image.revision"]' <<<"$cfg")" "revision label"
  assert_eq "$(date -u -d "@$sde" +%Y-%m-%dT%H:%M:%SZ)" "$(jq -r '.config.Labels["org.opencontainers.image.created"]' <<<"$cfg")" "created label"
  for l in source licenses; do
    jq -e ".config.Labels[\"org.opencontainers.image.$l\"] | length > 0" <<<"$cfg" >/dev/null || fail "no $l label"
  done
  assert_eq "kcmdr:$version" "$(tar -xOf "$IMAGE" index.json | jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]')" "image name"
  # the layer (one) as the registry would store it
  layer=copied/$(jq -r '.layers[0].digest | sub("sha256:"; "")' copied/manifest.json)
  TZ=UTC tar -tvzf "$layer" --numeric-owner --full-time > layer.txt
  awk '{print $2}' layer.txt | sort -u > owners
  assert_eq "0/0" "$(cat owners)" "owners of every entry"
  awk '{print $4 "T" substr($5, 1, 8)}' layer.txt | sort -u > mtimes
  assert_eq "$(date -u -d "@$sde" +%Y-%m-%dT%H:%M:%S)" "$(cat mtimes)" "mtimes of every entry"
  awk '{print $6}' layer.txt > names
  for f in usr/bin/kcmdr etc/ssl/certs/ca-certificates.crt usr/share/zoneinfo/Europe/Berlin etc/passwd etc/group tmp/; do
    grep -qx "$f" names || fail "$f not in the image"
  done
  grep -E '(^|/)(sh|bash|dash|busybox)$' names && fail "a shell is in the image"
  assert_eq drwxrwxrwt "$(awk '$6 == "tmp/" {print $1}' layer.txt)" "/tmp's mode"
  [ "$(grep -c '^tmp/' names)" = 1 ] || fail "/tmp is not empty"
  ldd "$IMAGE_BIN" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print substr($i, 2)}' | sort -u > want.libs
  grep -E '^(lib|lib64|usr/lib)/.*\.so' names | sort > have.libs
  assert_eq "$(cat want.libs)" "$(cat have.libs)" "the libraries are exactly those ldd names"
  while read -r lib; do
    pkg=$(dpkg-query -S "/$lib" 2>/dev/null || dpkg-query -S "$(readlink -f "/$lib")" 2>/dev/null) || fail "no package for $lib"
    grep -qx "usr/share/doc/${pkg%%:*}/copyright" names || fail "no copyright file of ${pkg%%:*} for $lib"
  done < want.libs
  grep -q "nonroot:x:65532:65532:" <(tar -xOzf "$layer" etc/passwd) || fail "no passwd entry for 65532"
}

# tried: scripts/image in a clone whose origin is an https URL with a user and a token in it,
# then in a clone of the same commit over ssh (scp-like git@host:path), each on a small binary
# (a stand-in that prints a version and links only libc, so the builds take a second). Asserted:
# the source label is the public https URL, without the credentials, and the token is nowhere in
# the archive; both clones give the same manifest digest (the label is in the digest, so before
# the remote was made public, two machines cloning one commit differently built different images).
test_pod_image_source_label_public() {
  printf '#include <stdio.h>\nint main(void) { puts("kcmdr 0.0.1-test"); return 0; }\n' > v.c
  cc -o kcmdr-stand-in v.c
  mkdir -p repo/scripts && cp "$REPO/scripts/image" repo/scripts/
  git -C repo init -q && git -C repo add scripts/image
  GIT_COMMITTER_DATE=@1700000000 GIT_AUTHOR_DATE=@1700000000 git -C repo -c user.name=t -c user.email=t@t commit -qm image
  git clone -q repo ssh-clone
  git -C repo remote add origin "https://builder:ghp_s3cr3tT0ken@git.example.org/org/kcmdr.git"
  git -C ssh-clone remote set-url origin "git@git.example.org:org/kcmdr.git"
  label() { tar -xOf "$1" "blobs/sha256/$(tar -xOf "$1" index.json | jq -r '.manifests[0].digest | sub("sha256:"; "")')" |
    jq -r '.annotations["org.opencontainers.image.source"]'; }
  digest() { tar -xOf "$1" index.json | jq -r '.manifests[0].digest'; }
  repo/scripts/image --bin "$PWD/kcmdr-stand-in" --out "$PWD/https.tar" > https.log
  ssh-clone/scripts/image --bin "$PWD/kcmdr-stand-in" --out "$PWD/ssh.tar" > ssh.log
  assert_eq "https://git.example.org/org/kcmdr" "$(label https.tar)" "source label from an https remote with credentials"
  ! grep -aq "s3cr3tT0ken" https.tar <(tar -xOf https.tar) || fail "the remote's token is in the image"
  assert_eq "https://git.example.org/org/kcmdr" "$(label ssh.tar)" "source label from an ssh remote"
  assert_eq "$(digest https.tar)" "$(digest ssh.tar)" "digests of one commit cloned over https and over ssh"
}

# pod_proc_pid UNSHARE_PID: the host pid of the namespace's first process (the one that becomes
# kcmdr), once it exists
pod_child() { cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{print $1}'; }

# pod_token_dir DIR TOKEN: the service-account volume as the kubelet writes it (its atomic
# writer): the files in a timestamped directory, ..data a link to it, and token, ca.crt and
# namespace links through ..data; a second call swaps ..data in one rename, as a rotation does
pod_token_dir() {
  local d=$1 ts old
  ts=..$(date -u +%Y_%m_%d_%H_%M_%S.%N)
  old=$(readlink "$d/..data" 2>/dev/null || true)
  mkdir -p "$d/$ts"
  printf '%s' "$2" > "$d/$ts/token"
  cp "$POD_CA" "$d/$ts/ca.crt"
  printf 'kcm-system' > "$d/$ts/namespace"
  chmod 0644 "$d/$ts/"*
  chmod 0755 "$d/$ts"
  ln -s "$ts" "$d/..data_tmp"
  mv -T "$d/..data_tmp" "$d/..data"
  for f in token ca.crt namespace; do [ -L "$d/$f" ] || ln -s "..data/$f" "$d/$f"; done
  [ -z "$old" ] || rm -rf "${d:?}/$old"
}

# tried: `kcmdr install` applied (all but its Deployment: there is no kubelet to run it), the
# image unpacked, and its entrypoint run with the Deployment's args the way that Deployment's Pod
# runs it (see the top of this file): uid/gid and securityContext from the manifest, the token a
# TokenRequest issued for the Deployment's ServiceAccount, no kubeconfig anywhere. Asserted: the
# process runs the image's binary (not bin/kcmdr) as 65532 with no capabilities, no_new_privs, on
# a read-only root with /tmp the only writable volume; it becomes the leader with the builtin
# engine; a scheduled ManagementBackup gives a Completed backup into the S3 gateway and a restore
# of it brings back a deleted object; the probe paths and ports the Deployment names answer 200,
# /metrics on the metrics port too; the token rotated by the kubelet's atomic swap, the old one
# revoked (its bound Secret deleted): the next scheduled backup still completes; SIGTERM to the
# container's PID 1 stops it with exit 0 (a PID 1 without a handler would ignore it); peak memory
# stayed under the Deployment's limit; the root filesystem, /dev and the mounts are as they were
# and /tmp is left empty.
test_pod_runs_from_the_image_as_its_deployment() {
  [ -s "$IMAGE" ] || fail "$IMAGE missing: make image"
  eng_env pod
  trap 'pod_stop; ctl_stop_all; "$REPO/scripts/testenv" down --name "$ENG_ENV" >/dev/null 2>&1' EXIT
  POD_CA=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  [ -s "$POD_CA" ] || fail "no CA file in the kubeconfig"
  # the manifests, as JSON, from the binary in the image; the image name follows its version
  # and --image
  version=$("$IMAGE_BIN" version | sed -n '1s/^kcmdr //p')
  "$IMAGE_BIN" install | kubectl create --dry-run=client -o json -f - > install.json
  dep=$(jq -c 'select(.kind == "Deployment")' install.json)
  assert_eq "kcmdr:$version" "$(jq -r '.spec.template.spec.containers[0].image' <<<"$dep")" "the Deployment's image"
  assert_eq "$(tar -xOf "$IMAGE" index.json | jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]')" \
    "kcmdr:$version" "the image make image built is the one kcmdr install names"
  # captured first: `| grep -q` under pipefail fails when grep exits before install has written all
  local custom; custom=$("$IMAGE_BIN" install --image registry.example/kcmdr:1.2)
  grep -q '^ *image: registry.example/kcmdr:1.2$' <<<"$custom" || fail "--image not applied"
  jq -s '{apiVersion: "v1", kind: "List", items: map(select(.kind != "Deployment"))}' install.json | kubectl apply -f - > apply.log
  pod=$(jq -c '.spec.template.spec' <<<"$dep")
  ctr=$(jq -c '.containers[0]' <<<"$pod")
  sa=$(jq -r '.serviceAccountName' <<<"$pod")
  # what the manifest promises, which this run then holds the binary to
  assert_eq '65532|65532|true' "$(jq -j '.securityContext | "\(.runAsUser)|\(.runAsGroup)|\(.runAsNonRoot)"' <<<"$pod")" "pod securityContext"
  assert_eq 'false|true|["ALL"]' "$(jq -c -j '.securityContext | .allowPrivilegeEscalation, "|", .readOnlyRootFilesystem, "|", .capabilities.drop' <<<"$ctr")" "container securityContext"
  vol=$(jq -r '.volumeMounts[] | select(.mountPath == "/tmp") | .name' <<<"$ctr")
  jq -e --arg v "$vol" '.volumes[] | select(.name == $v) | .emptyDir' <<<"$pod" >/dev/null || fail "/tmp is not an emptyDir"
  [ "$(jq '.volumeMounts | length' <<<"$ctr")" = 1 ] || fail "more volumes than /tmp: $(jq -c .volumeMounts <<<"$ctr")"
  port_of() { jq -r --arg n "$1" '.ports[] | select(.name == $n or (.containerPort | tostring) == $n) | .containerPort' <<<"$ctr"; }
  live_path=$(jq -r '.livenessProbe.httpGet.path' <<<"$ctr") ready_path=$(jq -r '.readinessProbe.httpGet.path' <<<"$ctr")
  probe_port=$(port_of "$(jq -r '.livenessProbe.httpGet.port' <<<"$ctr")")
  assert_eq "$probe_port" "$(port_of "$(jq -r '.readinessProbe.httpGet.port' <<<"$ctr")")" "both probes on one port"
  metrics_port=$(port_of metrics)
  # the Deployment's args; its fixed ports moved to free ones (this host's network is shared),
  # after checking they are the ports its probes and metrics port name
  args=()
  hp=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  mp=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  while read -r a; do
    case $a in
      --health-probe-bind-address=*) assert_eq ":$probe_port" "${a#*=}" "probe address vs probe port"; a=--health-probe-bind-address=127.0.0.1:$hp ;;
      --metrics-bind-address=*) assert_eq ":$metrics_port" "${a#*=}" "metrics address vs metrics port"; a=--metrics-bind-address=127.0.0.1:$mp ;;
    esac
    args+=("$a")
  done < <(jq -r '.args[]' <<<"$ctr")
  [ "$(jq 'has("command")' <<<"$ctr")" = false ] || fail "the Deployment overrides the entrypoint"
  mem_limit=$(jq -r '.resources.limits.memory' <<<"$ctr")

  # the image as a runtime gets it: skopeo from the archive into a layout, umoci unpack
  skopeo copy -q "oci-archive:$IMAGE" oci:layout:kcmdr
  umoci unpack --image layout:kcmdr bundle > unpack.log
  R=$PWD/bundle/rootfs
  cfg=$(skopeo inspect --config "oci-archive:$IMAGE")
  mapfile -t entry < <(jq -r '.config.Entrypoint[]' <<<"$cfg")
  mapfile -t envs < <(jq -r '.config.Env[]' <<<"$cfg")
  # mount points the runtime creates in the root before making it read-only
  mkdir -p "$R/proc" "$R/dev" "$R/var/run/secrets/kubernetes.io/serviceaccount"
  touch "$R/etc/hosts" "$R/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\tkcmdr-pod\n' > hosts
  cp /etc/resolv.conf resolv.conf
  mkdir -m 0777 emptydir && chmod 0777 emptydir
  find "$R" -printf '%p %s %m %U:%G %T@ %l\n' | sort > root.before
  # the token: a TokenRequest for the Deployment's ServiceAccount, bound to a Secret so that
  # deleting the Secret revokes it
  kubectl -n kcm-system create secret generic token-a >/dev/null
  token_a=$(kubectl -n kcm-system create token "$sa" --bound-object-kind Secret --bound-object-name token-a)
  pod_token_dir sa "$token_a"
  api=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  api_host=${api#https://}; api_port=${api_host##*:}; api_host=${api_host%:*}
  envs+=("HOSTNAME=kcmdr-pod" "HOME=/nonexistent" "KUBERNETES_SERVICE_HOST=$api_host" "KUBERNETES_SERVICE_PORT=$api_port"
         "KUBERNETES_SERVICE_PORT_HTTPS=$api_port" "KUBERNETES_PORT=tcp://$api_host:$api_port"
         "KUBERNETES_PORT_443_TCP=tcp://$api_host:$api_port" "KUBERNETES_PORT_443_TCP_PROTO=tcp"
         "KUBERNETES_PORT_443_TCP_ADDR=$api_host" "KUBERNETES_PORT_443_TCP_PORT=$api_port")
  printf '%s\0' "${envs[@]}" > env0
  # the runtime's last step (runc's init), in Python because nothing but kcmdr is in the root:
  # chroot, drop the whole bounding set, no supplementary groups, gid and uid, no_new_privs,
  # then exec the entrypoint with exactly the container's environment
  cat > init.py <<'PY'
import ctypes, os, sys
root, uid, gid, envfile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
env = dict(e.split("=", 1) for e in open(envfile).read().split("\0") if e)
libc = ctypes.CDLL(None, use_errno=True)
def prctl(*a):
    if libc.prctl(*a, 0, 0, 0) != 0: raise OSError(ctypes.get_errno(), "prctl %r" % (a,))
last = int(open("/proc/sys/kernel/cap_last_cap").read())
os.chroot(root); os.chdir("/")
for c in range(last + 1): prctl(24, c)  # PR_CAPBSET_DROP
os.setgroups([]); os.setgid(gid); os.setuid(uid)
prctl(38, 1)  # PR_SET_NO_NEW_PRIVS (allowPrivilegeEscalation: false)
os.execve(sys.argv[5], sys.argv[5:], env)
PY
  uid=$(jq -r '.securityContext.runAsUser' <<<"$pod") gid=$(jq -r '.securityContext.runAsGroup' <<<"$pod")
  assert_eq "$uid:$gid" "$(jq -r .config.User <<<"$cfg")" "the Pod's user is the image's own"
  unshare --mount --pid --uts --fork --kill-child --propagation private bash -euc '
    R=$1 W=$2; shift 2
    hostname kcmdr-pod
    mount --bind "$R" "$R"
    mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
    mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$R/dev"
    for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
    mount --bind "$W/emptydir" "$R/tmp"
    mount --bind "$W/sa" "$R/var/run/secrets/kubernetes.io/serviceaccount"
    mount -o remount,ro,bind "$R/var/run/secrets/kubernetes.io/serviceaccount"
    for f in hosts resolv.conf; do mount --bind "$W/$f" "$R/etc/$f"; mount -o remount,ro,bind "$R/etc/$f"; done
    mount -o remount,ro,bind "$R"
    exec python3 "$W/init.py" "$R" "$@"' pod "$R" "$PWD" "$uid" "$gid" "$PWD/env0" "${entry[@]}" "${args[@]}" > pod.log 2>&1 &
  POD_UNSHARE=$!
  wait_until 10 sh -c "[ -n \"\$(cat /proc/$POD_UNSHARE/task/$POD_UNSHARE/children 2>/dev/null)\" ]"
  POD_PID=$(pod_child "$POD_UNSHARE")
  wait_until 20 grep -q "caches synced" pod.log
  # the process: the image's binary, as the Pod's user, without privileges
  assert_eq "$(stat -c %d:%i "$R/usr/bin/kcmdr")" "$(stat -L -c %d:%i "/proc/$POD_PID/exe")" "the binary is the image's"
  st=/proc/$POD_PID/status
  assert_eq "$uid $uid $uid $uid" "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "$st")" "uids"
  assert_eq "$gid $gid $gid $gid" "$(awk '/^Gid:/ {print $2, $3, $4, $5}' "$st")" "gids"
  assert_eq "" "$(awk '/^Groups:/ {print $2}' "$st")" "supplementary groups"
  for c in CapInh CapPrm CapEff CapBnd CapAmb; do assert_eq 0000000000000000 "$(awk -v c="$c:" '$1 == c {print $2}' "$st")" "$c"; done
  assert_eq 1 "$(awk '/^NoNewPrivs:/ {print $2}' "$st")" "no_new_privs"
  assert_eq 1 "$(awk '/^NSpid:/ {print $NF}' "$st")" "PID 1 in its namespace"
  # its mounts: / read-only, /tmp the emptyDir, the token volume read-only; nothing else writable
  # but /dev and /proc (as in any container)
  awk '{print $5, $6}' "/proc/$POD_PID/mountinfo" > mounts
  assert_contains "$(grep '^/ ' mounts)" "ro," "/ read-only"
  assert_contains "$(grep '^/var/run/secrets/kubernetes.io/serviceaccount ' mounts)" "ro," "token volume read-only"
  assert_contains "$(grep '^/tmp ' mounts)" "rw," "/tmp writable"
  rw=$(awk '$2 ~ /^rw/ {print $1}' mounts | grep -vE '^/(tmp|proc|dev)(/|$)' || true)
  assert_eq "" "$rw" "writable mounts besides /tmp, /proc and /dev"
  grep -q 'engine builtin' pod.log || fail "not the builtin engine: $(grep -m1 'kcmdr controller' pod.log)"
  wait_until 30 sh -c "kubectl -n kcm-system get lease kcmdr-controller-leader -o jsonpath='{.spec.holderIdentity}' | grep -q kcmdr-pod"
  code() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2"; }
  assert_eq 200 "$(code "$hp" "$live_path")" "liveness probe $live_path"
  wait_until 10 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$hp$ready_path)\" = 200 ]"
  # a scheduled backup into the S3 gateway, then a restore of it
  s3_bsl rgw
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: sched}
spec: {schedule: "@every 8s", storageLocation: rgw}
YAML
  completed() { kubectl -n kcm-system get backups -o json | jq -r '[.items[] | select(.status.phase == "Completed") | .metadata.name] | sort | .[]'; }
  wait_until 60 sh -c "kubectl -n kcm-system get backups -o json | jq -e '[.items[] | select(.status.phase == \"Completed\")] | length > 0'"
  first=$(completed | head -n 1)
  victim=$(kubectl get clusterdeployments -A -o json | jq -r '.items[0] | "\(.metadata.namespace)/\(.metadata.name)"')
  kubectl -n "${victim%/*}" delete clusterdeployment "${victim#*/}" >/dev/null
  kubectl create -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: Restore
metadata: {name: pod-restore, namespace: kcm-system}
spec: {backupName: $first}
YAML
  wait_until 60 sh -c "kubectl -n kcm-system get restore pod-restore -o json | jq -e '.status.phase == \"Completed\"'"
  kubectl -n "${victim%/*}" get clusterdeployment "${victim#*/}" >/dev/null || fail "the restore did not bring back $victim"
  # the kubelet rotates the token; the old one is then revoked
  kubectl -n kcm-system create secret generic token-b >/dev/null
  pod_token_dir sa "$(kubectl -n kcm-system create token "$sa" --bound-object-kind Secret --bound-object-name token-b)"
  assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$POD_CA" -H "Authorization: Bearer $token_a" "$api/api")" "the first token, before its Secret goes"
  kubectl -n kcm-system delete secret token-a >/dev/null
  # the old token is really dead now: what works from here on was done with the new one (the
  # API server caches a token's successful check for 10 s: on a loaded machine it takes longer)
  wait_until 30 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --cacert '$POD_CA' -H 'Authorization: Bearer $token_a' $api/api)\" = 401 ]"
  before=$(completed | wc -l)
  wait_until 60 sh -c "[ \$(kubectl -n kcm-system get backups -o json | jq '[.items[] | select(.status.phase == \"Completed\")] | length') -gt $before ]"
  assert_eq 200 "$(code "$hp" "$ready_path")" "still ready (the Lease renewed) after the rotation"
  m=$(curl -sf "http://127.0.0.1:$mp/metrics") || fail "/metrics on the metrics port"
  grep -Eq '^kcmdr_backups_completed_total(\{[^}]*\})? [1-9]' <<<"$m" || fail "no completed backups in /metrics: $(grep backups_completed <<<"$m")"
  # memory: the peak against the Deployment's limit
  hwm_kb=$(awk '/^VmHWM:/ {print $2}' "$st")
  case $mem_limit in *Mi) limit_kb=$(( ${mem_limit%Mi} * 1024 )) ;; *Gi) limit_kb=$(( ${mem_limit%Gi} * 1048576 )) ;; *) fail "memory limit $mem_limit" ;; esac
  [ "$hwm_kb" -lt "$limit_kb" ] || fail "peak RSS ${hwm_kb} kB is over the limit $mem_limit"
  echo "    peak RSS ${hwm_kb} kB (Deployment: request $(jq -r '.resources.requests.memory' <<<"$ctr"), limit $mem_limit)"
  ls -A "/proc/$POD_PID/root/dev" | sort | tr '\n' ' ' > dev.after
  assert_eq "full null random tty urandom zero " "$(cat dev.after)" "/dev holds only what the runtime put there"
  # the kubelet stops a container with SIGTERM to its PID 1
  kill -TERM "$POD_PID"
  rc=0; wait "$POD_UNSHARE" || rc=$?
  POD_UNSHARE=
  assert_eq 0 "$rc" "exit status after SIGTERM (log: $(tail -n 3 pod.log))"
  ! grep -iE 'forbidden|unauthorized' pod.log || fail "the service account lacked a permission or a valid token"
  find "$R" -printf '%p %s %m %U:%G %T@ %l\n' | sort > root.after
  diff root.before root.after || fail "the root filesystem changed"
  assert_eq "" "$(ls -A emptydir)" "what the run left in /tmp"
}

pod_stop() {
  if [ -n "${POD_UNSHARE:-}" ]; then
    [ -z "${POD_PID:-}" ] || kill -KILL "$POD_PID" 2>/dev/null || true
    kill -KILL "$POD_UNSHARE" 2>/dev/null || true
  fi
}
