"""The shell scripts reconciliation runs inside the agent's sandbox, as the agent.

They are the only code that writes into an agent's home for capabilities:
run as the agent's uid inside its sandbox, a symlink the agent planted can
only redirect a write to where the agent could write anyway. Values reach
them as positional arguments, never spliced into the script text.
"""

from __future__ import annotations

NOT_FOUND = 127
NOT_FOUND_MARK = "RUNYARD_EXECUTABLE_NOT_FOUND"

# $1 = number of kept skill names, then the names, then every known harness skill dir.
PRUNE = r"""
set -u
n="$1"; shift
keep=()
for ((i = 0; i < n; i++)); do keep+=("$1"); shift; done
base="$HOME/.agents/skills"
manifest="$base/.runyard-managed"
mkdir -p -- "$base" || exit 1
kept() { local x; for x in "${keep[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
if [ -f "$manifest" ] && [ ! -L "$manifest" ]; then
  while IFS= read -r name; do
    case "$name" in "" | .* | */*) continue ;; esac
    for d in "$@"; do [ -L "$HOME/$d/$name" ] && rm -f -- "$HOME/$d/$name"; done
    kept "$name" || rm -rf -- "${base:?}/$name"
  done < "$manifest"
fi
printf '%s\n' "${keep[@]}" > "$manifest.new" && mv -f -- "$manifest.new" "$manifest"
"""

# $1 = skill name, $2 = staged skill directory, then the enabled harness skill dirs.
INSTALL_SKILL = r"""
set -eu
name="$1"; src="$2"; shift 2
base="$HOME/.agents/skills"
mkdir -p -- "$base"
tmp="$base/.$name.runyard-new"
rm -rf -- "$tmp"
cp -R -- "$src" "$tmp"
rm -rf -- "${base:?}/$name"
mv -T -- "$tmp" "$base/$name"
for d in "$@"; do
  mkdir -p -- "$HOME/$d"
  rm -rf -- "${HOME:?}/$d/$name"
  ln -s -- "../../.agents/skills/$name" "$HOME/$d/$name"
done
"""

# $1 = executable, then its version arguments.
VALIDATE_CLI = rf"""
if ! command -v -- "$1" >/dev/null 2>&1; then echo {NOT_FOUND_MARK} >&2; exit {NOT_FOUND}; fi
exec "$@" </dev/null >/dev/null
"""

# $1 = pip | npm, then the package specifiers.
INSTALL_PACKAGES = r"""
set -eu
manager="$1"; shift
case "$manager" in
  pip) PIP_BREAK_SYSTEM_PACKAGES=1 exec python3 -m pip install --user --no-input \
         --disable-pip-version-check "$@" ;;
  npm) mkdir -p -- "$HOME/.local"; exec npm install -g --prefix "$HOME/.local" "$@" ;;
esac
echo "unknown package manager" >&2
exit 2
"""

# $1 = the staged mcp.json.
WRITE_MCP = r"""
set -eu
mkdir -p -- "$HOME/.agents"
cp -- "$1" "$HOME/.agents/.mcp.json.runyard-new"
mv -f -- "$HOME/.agents/.mcp.json.runyard-new" "$HOME/.agents/mcp.json"
: > "$HOME/.agents/.runyard-mcp"
"""

REMOVE_MCP = r"""
if [ -f "$HOME/.agents/.runyard-mcp" ]; then
  rm -f -- "$HOME/.agents/mcp.json" "$HOME/.agents/.runyard-mcp"
fi
"""
