#!/bin/sh
# Installs a kiln .deb into a fresh Debian root and uses it as an admin would; run by
# tests/package/deb_test.cc inside `unshare --mount --net` (as root), so every mount, the
# server's port and its processes stay private to the test.
# Usage: install_deb.sh IMAGE_ROOTFS DEB WORKDIR   Writes WORKDIR/{install,version,run}.out.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
image=$1 deb=$2 work=$3
root=$work/root
mkdir -p "$root" "$work/upper" "$work/ovl"
ip link set lo up
# The image stays untouched: the root is an overlay over it.
mount -t overlay overlay -o "lowerdir=$image,upperdir=$work/upper,workdir=$work/ovl" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"

# Installed as `apt install ./kiln_*.deb` would, minus the download: the image already has the
# package's dependencies, and dpkg refuses the package if one is missing.
cp "$deb" "$root/tmp/kiln.deb"
chroot "$root" dpkg -i /tmp/kiln.deb >"$work/install.out" 2>&1
chroot "$root" kiln --version >"$work/version.out" 2>&1

# `systemctl start kiln`, as systemd runs the installed unit: its Environment=, then its
# EnvironmentFile=, then ExecStart=, with StateDirectory= created. The data dir is a tmpfs: the
# sandboxes' overlays cannot have their upper dirs on the overlay root.
unit=$root/lib/systemd/system/kiln.service
environment=$(sed -n 's/^Environment=//p' "$unit")
envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
state=$(sed -n 's/^StateDirectory=//p' "$unit")
mkdir -p "$root/var/lib/$state"
mount -t tmpfs -o mode=0700 tmpfs "$root/var/lib/$state"
chroot "$root" sh -c "set -a; $environment; . $envfile; KILN_ALLOW_LOCAL_REPOS=/srv; set +a; exec $execstart" \
  >"$work/serve.out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT

# A job from the installed CLI, through the service, found the way the install message says.
chroot "$root" sh -c 'set -e; mkdir /srv/hello && cd /srv/hello && git init -q -b main &&
  echo "# hello" > README.md && git add -A &&
  git -c user.name=t -c user.email=t@t commit -qm "first commit"'
data=$(sed -n 's/^ *CLI: *kiln --data-dir \([^ ]*\) jobs.*/\1/p' "$work/install.out")
[ -n "$data" ] || { echo "no 'CLI: kiln --data-dir DIR jobs' line in the install message"; exit 1; }
# Until the server has written server.json (its URL), for at most 60 s.
tries=0
until [ -s "$root$data/server.json" ]; do
  kill -0 $server 2>/dev/null || { echo "kiln serve exited:"; cat "$work/serve.out"; exit 1; }
  tries=$((tries + 1))
  [ $tries -le 600 ] || { echo "no $data/server.json after 60 s:"; cat "$work/serve.out"; exit 1; }
  sleep 0.1
done
# The token where the message said, readable by root only.
(cd "$root" && stat -c '%A /%n' "${data#/}/admin.token") >"$work/token.out"
status=0
chroot "$root" kiln --data-dir "$data" run --repo /srv/hello "Add a farewell function" \
  >"$work/run.out" 2>&1 || status=$?
echo "run exit $status"
exit $status
