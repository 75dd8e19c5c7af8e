#!/bin/sh
# One HTTP/1.1 exchange on stdin/stdout (the connection). The request body is a shell
# script: it runs under `sh` and its stdout becomes the response body; its stderr goes to
# the container's stderr (the function log); its exit status is the X-Exit-Code header.
# The response always carries `Connection: close` and the connection ends with it.

cr=$(printf '\r')
IFS=' ' read -r method target version || exit 0
path=${target%%\?*}

work=$(mktemp -d /tmp/fcx-req.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
: >"$work/headers"
: >"$work/body"

length=0
chunked=
expect=
while IFS= read -r line; do
	line=${line%"$cr"}
	[ -z "$line" ] && break
	printf '%s\n' "$line" >>"$work/headers"
	# Header names are case-insensitive; brackets avoid a `tr` fork per header.
	case "$line" in
	[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]:*) length=$((${line#*:})) ;;
	[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]:*[Cc][Hh][Uu][Nn][Kk][Ee][Dd]*) chunked=1 ;;
	[Ee][Xx][Pp][Ee][Cc][Tt]:*100-[Cc][Oo][Nn][Tt][Ii][Nn][Uu][Ee]*) expect=1 ;;
	esac
done

[ -n "$expect" ] && printf 'HTTP/1.1 100 Continue\r\n\r\n'

# `dd bs=N count=1 iflag=fullblock` reads exactly N bytes: buffered readers such as
# `head -c` may swallow the bytes that follow a chunk.
if [ -n "$chunked" ]; then
	while IFS= read -r size; do
		size=${size%"$cr"}
		size=$((0x${size%%;*}))
		[ "$size" -eq 0 ] && break
		dd bs="$size" count=1 iflag=fullblock 2>/dev/null >>"$work/body"
		read -r _
	done
	# Trailers, up to the blank line that ends the message.
	while IFS= read -r line; do
		[ -z "${line%"$cr"}" ] && break
	done
elif [ "$length" -gt 0 ]; then
	dd bs="$length" count=1 iflag=fullblock 2>/dev/null >"$work/body"
fi

case "$path" in
/invoke | /initialize | /pre-stop | /pre-freeze)
	status="200 OK"
	# The script's stdin is not the connection, and its stdout is a file, so background
	# processes it leaves behind cannot hold the connection open.
	REQUEST_METHOD=$method REQUEST_PATH=$path REQUEST_HEADERS=$work/headers \
		sh "$work/body" <"/dev/null" >"$work/out"
	code=$?
	;;
*)
	status="404 Not Found"
	code=
	printf 'no route for %s %s\n' "$method" "$path" >"$work/out"
	;;
esac

printf 'HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %s\r\nX-Exit-Code: %s\r\nConnection: close\r\n\r\n' \
	"$status" "$(stat -c %s "$work/out")" "$code"
cat "$work/out"
