#!/bin/sh
# graylink's container entrypoint.
#
# Started as root (the default), it gives the graylink user the PUID/PGID
# asked for, so files in /config and the links in the target belong to the
# same user as the media server, then drops to that user for good. Started
# with `--user`, it runs the command as that user unchanged.
set -eu

PUID="${PUID:-1000}"
PGID="${PGID:-1000}"
# The folder whose graylink files are handed to PUID:PGID (the image keeps all state there).
CONFIG_DIR="${GRAYLINK_CONFIG_DIR:-/config}"
EXAMPLE=/usr/share/graylink/graylink.ini.example

is_number() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
        *) return 0 ;;
    esac
}

if ! is_number "$PUID" || ! is_number "$PGID"; then
    echo "graylink-entrypoint: PUID and PGID must be numbers (got PUID=$PUID PGID=$PGID)" >&2
    exit 2
fi

# A compose file may configure graylink with GRAYLINK_* variables alone; then
# there is no file to read, and naming one that does not exist would be fatal.
if [ -n "${GRAYLINK_CONFIG:-}" ] && [ ! -e "$GRAYLINK_CONFIG" ]; then
    if [ -n "${GRAYLINK_PATHS_SOURCE:-}" ] && [ -n "${GRAYLINK_PATHS_TARGET:-}" ]; then
        unset GRAYLINK_CONFIG
    elif [ "${1:-}" = "graylink" ]; then
        echo "graylink-entrypoint: no config at $GRAYLINK_CONFIG: copy $EXAMPLE there and edit it," \
            "or set GRAYLINK_PATHS_SOURCE and GRAYLINK_PATHS_TARGET" >&2
    fi
fi

if [ "$(id -u)" != "0" ]; then
    exec "$@"
fi

if [ "$(id -g graylink)" != "$PGID" ]; then
    groupmod --non-unique --gid "$PGID" graylink
fi
if [ "$(id -u graylink)" != "$PUID" ]; then
    usermod --non-unique --uid "$PUID" graylink
fi

mkdir -p "$CONFIG_DIR"
# Only what graylink writes is handed over, and only when the owner is wrong
# (first start, or PUID changed): a recursive chown of a big /config on every
# start, or of a user's mounted rclone.conf, would be neither quick nor polite.
for item in "$CONFIG_DIR" "$CONFIG_DIR"/graylink.db "$CONFIG_DIR"/graylink.db-wal "$CONFIG_DIR"/graylink.db-shm \
    "$CONFIG_DIR"/graylink.db.lock "$CONFIG_DIR"/drive-token.json; do
    if [ -e "$item" ] && [ "$(stat -c %u:%g "$item")" != "$PUID:$PGID" ]; then
        chown "$PUID:$PGID" "$item"
    fi
done

exec setpriv --reuid="$PUID" --regid="$PGID" --init-groups -- "$@"
