#!/bin/sh
# fcx test image server (busybox_web_image): runs the image's startup script, then serves
# FC's web-server protocol on 0.0.0.0:${FC_SERVER_PORT:-9000}. `nc -ll -e` forks one
# handler per connection, so a slow or hung request does not block the next one.

# Sourced, so the startup script can `exit` (a crashing function) or `export` settings
# that every request then sees.
. /etc/fcx/startup.sh

exec nc -ll -p "${FC_SERVER_PORT:-9000}" -e /bin/fcx-handle
