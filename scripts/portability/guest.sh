#!/bin/sh
# Runs inside the portability guest (fcx-portability.service, from the payload disk at
# /payload): reports the host facts, runs the smoke suite on the guest itself (pure cgroup
# v2, systemd) and then inside a container (container.sh). Everything goes to the serial
# console, which the host reads; the unit powers the guest off when this ends.
echo "FCXP-BEGIN"
echo "FCXP-NOTE guest kernel $(uname -r); init $(cat /proc/1/comm); $(systemctl --version | head -n1)"
echo "FCXP-NOTE guest cgroup root controllers: $(cat /sys/fs/cgroup/cgroup.controllers); subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "FCXP-NOTE guest crun: $(crun --version | head -n1); pasta: $(pasta --version 2>&1 | head -n1)"
# The guest's mountinfo, for the native suite's layout fixture.
echo "FCXP-MOUNTINFO-guest-BEGIN"
cat /proc/self/mountinfo
echo "FCXP-MOUNTINFO-guest-END"
echo "FCXP-CGROUP $(cat /proc/self/cgroup)"

only=",$(cat /payload/only 2>/dev/null || echo guest,container),"
case "$only" in *,guest,*) FCXP_WAIT=$(cat /payload/wait) bash /payload/smoke.sh guest /payload ;; esac
case "$only" in *,container,*) FCXP_WAIT=$(cat /payload/wait) sh /payload/container.sh ;; esac
echo "FCXP-END"
