#!/usr/bin/env bash
# Stop the daemons that up.sh started, by the PIDs in their pid files. Usage: down.sh STATE_DIR
state=${1:?usage: down.sh STATE_DIR}
for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid"; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
sleep 1
exit 0
