#!/usr/bin/env bash
# Start PostgreSQL and MariaDB if this machine has them installed but not running (the
# machine normally starts them before a session; CI reuses them as the session left them).
set -uo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! port_open 3306 && [[ -x /usr/sbin/mariadbd ]]; then
    echo "services: starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 30); do
    port_open 5432 && port_open 3306 && exit 0
    sleep 1
done
echo "services: PostgreSQL or MariaDB is not reachable on 127.0.0.1" >&2
