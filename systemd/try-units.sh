#!/usr/bin/env bash
# Runs the units in this folder under a real systemd on a machine whose PID 1 is not systemd (a
# container, a CI VM): systemd boots as PID 1 of private mount, PID, UTS, IPC and cgroup
# namespaces, with overlays on /etc and /var and tmpfs on /run and /tmp, and starts
# cloudca.service and cloudca-web.service from an installation made as README.md describes
# (user cloudca in group softhsm, SoftHSM2 token in /var/lib/softhsm/tokens, encrypted
# credentials). Then it drives both through their sandboxes (CLI issue/revoke as cloudca, OCSP,
# CRL, admin API over mutual TLS, the web front, reload, back-up, stop) and prints what happened.
#
#   sudo systemd/try-units.sh [--kill-on-filter]   # build first: cargo build
#
# --kill-on-filter removes SystemCallErrorNumber=EPERM, so a call outside the filter kills the
# process with SIGSYS instead of failing quietly. Needs root, systemd, softhsm2, openssl, curl.
# Touches the host only in a scratch folder (removed at the end) and a cgroup named
# cloudca-try; the network namespace is the host's (listeners on 127.0.0.1).
set -euo pipefail
SELF=$(realpath "$0")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

if [ "${1:-}" != "--inner" ] && [ "${1:-}" != "--provision" ] && [ "${1:-}" != "--drive" ]; then
  KILL=${1:-}
  # Not under /etc, /var or /tmp: those get overlays or tmpfs inside.
  T=$(mktemp -d /opt/cloudca-try.XXXXXX)
  chmod 0755 "$T" # the services run their binary from here
  trap '[ -n "${KEEP:-}" ] || rm -rf "$T"; for h in systemd unified; do find /sys/fs/cgroup/$h/cloudca-try -depth -type d -exec rmdir {} \; 2>/dev/null || true; done' EXIT
  install -m 0755 "$REPO/target/debug/cloudca" "$T/cloudca"
  RUST_LOG=warn "$T/cloudca" dev-init --dir "$T/seed" > "$T/seed.log"
  mkdir -p "$T"/{etc,etc-work,var,var-work,log}
  for h in systemd unified; do mkdir -p /sys/fs/cgroup/$h/cloudca-try; done
  (T=$T KILL=$KILL REPO=$REPO unshare --mount --pid --fork --uts --ipc --propagation private "$SELF" --inner \
    > "$T/log/boot" 2>&1) &
  for _ in $(seq 100); do P=$(pgrep -f "^/lib/systemd/systemd --system --unit=cloudca-try.target" || true); [ -n "$P" ] && break; sleep 0.2; done
  [ -n "${P:-}" ] || { cat "$T/log/boot"; exit 1; }
  sleep 6
  nsenter -t "$P" -m -p -u env T="$T" "$SELF" --drive || true
  nsenter -t "$P" -m -p -u systemctl exit || true
  for _ in $(seq 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$P" 2>/dev/null || true
  wait
  exit 0
fi

if [ "$1" = "--inner" ]; then
  echo $$ > /sys/fs/cgroup/systemd/cloudca-try/cgroup.procs
  echo $$ > /sys/fs/cgroup/unified/cloudca-try/cgroup.procs
  exec unshare --cgroup bash -c '
    set -euo pipefail
    mount -t proc proc /proc
    mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/etc,workdir=$T/etc-work /etc
    mount -t overlay overlay -o lowerdir=/var,upperdir=$T/var,workdir=$T/var-work /var
    mount -t tmpfs -o mode=755 tmpfs /run
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
    mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
    T=$T KILL=$KILL REPO=$REPO "$0" --provision > $T/log/provision 2>&1
    # systemd expects shared mount propagation (credentials are mounted from a child namespace).
    mount --make-rshared /
    exec env container=cloudca-try /lib/systemd/systemd --system --unit=cloudca-try.target --log-target=null
  ' "$SELF"
fi

if [ "$1" = "--provision" ]; then
  set -x
  S=$T/seed
  useradd --system --user-group --home-dir /var/lib/cloudca --shell /usr/sbin/nologin cloudca
  usermod -aG softhsm cloudca
  install -d -m 0755 /etc/cloudca /etc/cloudca/tls
  cp -r "$S/policies" /etc/cloudca/policies
  install -m 0644 "$S/tls/server.pem" "$S/tls/operator-ca.pem" /etc/cloudca/tls/
  install -m 0644 "$S/tls/clients/web-front.pem" /etc/cloudca/tls/web-front.pem
  cp -r "$S"/tokens/* /var/lib/softhsm/tokens/
  chgrp -R softhsm /var/lib/softhsm/tokens
  chmod -R g+rwX /var/lib/softhsm/tokens
  find /var/lib/softhsm/tokens -type d -exec chmod 2770 {} +
  install -d -o cloudca -g cloudca -m 0700 /var/lib/cloudca
  cp -r "$S/data/." /var/lib/cloudca/
  chown -R cloudca:cloudca /var/lib/cloudca
  sed -e "s#$S/data#/var/lib/cloudca#g" -e "s#$S/policies#/etc/cloudca/policies#" \
      -e "s#^pin_file = .*#pin_file = \"/run/credentials/cloudca.service/hsm.pin\"#" \
      -e "s#^server_key = .*#server_key = \"/run/credentials/cloudca.service/tls.key\"#" \
      -e "s#$S/tls/#/etc/cloudca/tls/#g" -e "/^\[hsm.env\]/d" -e "/^SOFTHSM2_CONF/d" \
      "$S/cloudca.toml" > /etc/cloudca/cloudca.toml
  sed -e "s#$S/tls/operator-ca.pem#/etc/cloudca/tls/operator-ca.pem#" \
      -e "s#$S/tls/clients/web-front.pem#/etc/cloudca/tls/web-front.pem#" \
      -e "s#^client_key = .*#client_key = \"/run/credentials/cloudca-web.service/web-front.key\"#" \
      "$S/web.toml" > /etc/cloudca/web.toml
  chmod 0644 /etc/cloudca/cloudca.toml /etc/cloudca/web.toml
  systemd-creds setup
  install -d -m 0700 /etc/credstore.encrypted
  systemd-creds encrypt --name=hsm.pin "$S/secrets/hsm-user.pin" /etc/credstore.encrypted/cloudca.hsm.pin
  systemd-creds encrypt --name=tls.key "$S/tls/server.key" /etc/credstore.encrypted/cloudca.tls.key
  systemd-creds encrypt --name=web-front.key "$S/tls/clients/web-front.key" \
    /etc/credstore.encrypted/cloudca-web.web-front.key
  install -d /run/systemd/system
  for u in cloudca cloudca-web; do
    sed "s#/usr/bin/cloudca#$T/cloudca#g" "$REPO/systemd/$u.service" > /run/systemd/system/$u.service
    install -d /run/systemd/system/$u.service.d
    # Only what this namespace needs: no sysinit (nothing else runs here), logs to files.
    printf '[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=append:%s/log/%s\nStandardError=inherit\n' \
      "$T" "$u" > /run/systemd/system/$u.service.d/try.conf
    if [ "$KILL" = "--kill-on-filter" ]; then
      printf '[Service]\nSystemCallErrorNumber=\n' >> /run/systemd/system/$u.service.d/try.conf
    fi
  done
  printf '[Unit]\nDefaultDependencies=no\nWants=cloudca.service cloudca-web.service\n' \
    > /run/systemd/system/cloudca-try.target
  exit 0
fi

# --drive: inside the namespaces, with the units running.
B=$T/cloudca; C=/etc/cloudca/cloudca.toml; S=$T/seed; W=/tmp/w
mkdir -p $W && chmod 0777 $W
field() { grep "^$1 =" "$2" | cut -d'"' -f2; }
pub=$(field public $C); adm=$(field admin $C); web=$(field listen /etc/cloudca/web.toml)
as_cloudca() { runuser -u cloudca -- "$@"; }
step() { printf '%-58s' "$1"; }
systemctl --no-pager --lines=0 status cloudca.service cloudca-web.service | grep -E '^[●×]|Active:|Process:|Main PID:'
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $W/ee.key 2>/dev/null
openssl req -new -utf8 -key $W/ee.key -out $W/ee.csr \
  -subj "/C=CN/O=福建示例科技有限公司/CN=示例科技/serialNumber=91350100M000100Y43"
chmod 0644 $W/*
cat "$S/data/ca/root.pem" "$S/data/ca/org.pem" > $W/bundle.pem
ocsp() { openssl ocsp -no_nonce -issuer "$S/data/ca/org.pem" -cert $W/ee.pem -url "http://$pub/ocsp/org" -CAfile $W/bundle.pem 2>&1 | grep -o 'ee.pem: [a-z]*'; }
step "issue (CLI as cloudca, PIN from the credential)"; as_cloudca $B --config $C issue --profile org --csr $W/ee.csr --out $W/ee.pem 2>&1 | grep -v INFO
step "OCSP"; ocsp
serial=$(openssl x509 -in $W/ee.pem -noout -serial | cut -d= -f2)
step "revoke"; as_cloudca $B --config $C revoke --yes --serial "$serial" --reason keyCompromise 2>&1 | grep -v INFO | tail -1
sleep 4
step "OCSP after the revocation"; ocsp
step "CRL entries"; curl -sf "http://$pub/crl/org.crl" | openssl crl -inform DER -noout -text | grep -c 'Serial Number'
step "admin API (TLS key from the credential)"; curl -s --cacert "$S/tls/operator-ca.pem" --cert "$S/tls/clients/auditor.pem" --key "$S/tls/clients/auditor.key" "https://localhost:${adm#*:}/v1/audit/verify"; echo
step "web front (/apply calls the admin API)"; curl -s -o /dev/null -w '%{http_code}\n' "http://$web/apply/org-new"
step "reload"; systemctl reload cloudca.service && sleep 1 && systemctl is-active cloudca.service
step "backup create while running (as cloudca)"; as_cloudca $B --config $C backup create --out /var/lib/cloudca/try.db 2>&1 | head -1
step "stop"; systemctl stop cloudca.service; systemctl show -p ExecMainStatus --value cloudca.service
echo "--- last lines of cloudca's log"; tail -3 "$T/log/cloudca" | cut -c1-200
