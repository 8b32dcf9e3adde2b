#!/usr/bin/env bash
# Install ifnet's tools and manual pages, or remove them again.
#
#   bash scripts/install.sh [PREFIX]              build (release) and install
#   bash scripts/install.sh --uninstall [PREFIX]  remove what was installed
#   bash scripts/install.sh --from DIR [PREFIX]   install binaries from DIR
#                                                 instead of building
#
# PREFIX defaults to /opt/ifnet for root and ~/.local/opt/ifnet otherwise:
# a directory of ifnet's own, so that its ifconfig(8) shadows no system
# command until you put PREFIX/bin on PATH on purpose. Installing into a
# directory already on PATH (/usr/local, ~/.local) works too; the script
# then names every system command the new one would shadow.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=(ifnetd ifconfig brconfig shmifdump ifping ifnet-tools)
mode=install from=""
while [ $# -gt 0 ]; do
    case "$1" in
        --uninstall) mode=uninstall; shift ;;
        --from) from=${2:?--from needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) echo "install: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [ "$(id -u)" -eq 0 ]; then def=/opt/ifnet; else def=$HOME/.local/opt/ifnet; fi
PREFIX=${1:-$def}
MANIFEST=$PREFIX/share/ifnet/installed

if [ "$mode" = uninstall ]; then
    [ -f "$MANIFEST" ] || { echo "install: nothing of ifnet's is installed in $PREFIX" >&2; exit 1; }
    while IFS= read -r f; do rm -f "$PREFIX/$f"; done <"$MANIFEST"
    rm -f "$MANIFEST"
    # Directories go only if empty, and never above PREFIX.
    for d in share/ifnet share/man/man1 share/man/man4 share/man/man5 share/man/man8 share/man share bin ""; do
        rmdir "$PREFIX/$d" 2>/dev/null || true
    done
    echo "ifnet removed from $PREFIX"
    exit 0
fi

if [ -z "$from" ]; then
    cargo build --release --quiet --bins
    from=target/release
fi
# Which system commands an installed tool would hide, if PREFIX/bin came
# first on PATH (Debian's net-tools ifconfig is the usual one).
shadowed=()
for t in "${TOOLS[@]}"; do
    while IFS= read -r p; do
        [ "$p" = "$PREFIX/bin/$t" ] || shadowed+=("$p")
    done < <(type -aP "$t" 2>/dev/null || true)
done

mkdir -p "$PREFIX/bin" "$PREFIX/share/ifnet"
: >"$MANIFEST.new"
for t in "${TOOLS[@]}"; do
    install -m 0755 "$from/$t" "$PREFIX/bin/$t"
    echo "bin/$t" >>"$MANIFEST.new"
done
for m in man/*.[1-8]; do
    sec=${m##*.}
    mkdir -p "$PREFIX/share/man/man$sec"
    install -m 0644 "$m" "$PREFIX/share/man/man$sec/"
    echo "share/man/man$sec/${m##*/}" >>"$MANIFEST.new"
done
mv "$MANIFEST.new" "$MANIFEST"

echo "ifnet installed in $PREFIX (bin/, share/man/)"
if [ "${#shadowed[@]}" -gt 0 ]; then
    echo "note: with $PREFIX/bin first on PATH these system commands are shadowed:"
    printf '  %s\n' "${shadowed[@]}"
    echo "  (call them by full path, or put $PREFIX/bin on PATH only where you want ifnet's)"
fi
case ":$PATH:" in
    *":$PREFIX/bin:"*) ;;
    *) echo "to use it: export PATH=\"$PREFIX/bin:\$PATH\" MANPATH=\"$PREFIX/share/man:\$MANPATH\"" ;;
esac
