# shellcheck shell=bash
# Which Python runs the test helpers (tests/python/*), for scripts/demo and scripts/test.
#
# `python3` first on PATH is often not Debian's (pyenv, a venv, a CI image's own build), so
# the Debian packages scripts/demo and scripts/test install (python3-aiosmtpd,
# python3-cryptography) are not importable by it. python_with prints an interpreter that
# imports every module named: `python3` from PATH, else /usr/bin/python3 (where apt installed
# them), else `python3` after `pip install --user` of the missing ones. Sourced, not run.

# python_imports PYTHON MODULE...: true when PYTHON imports every MODULE.
python_imports() {
    local python=$1 module
    shift
    command -v "$python" >/dev/null 2>&1 || return 1
    for module in "$@"; do
        "$python" -c "import $module" 2>/dev/null || return 1
    done
}

# python_pip_install PYTHON MODULE...: installs the modules PYTHON lacks, for the user
# (PEP 668 distributions need --break-system-packages for that; a venv refuses --user).
python_pip_install() {
    local python=$1 module
    shift
    for module in "$@"; do
        python_imports "$python" "$module" && continue
        printf '==> %s lacks %s; installing it with pip\n' "$(command -v "$python")" "$module" >&2
        "$python" -m pip install --quiet --user "$module" 2>/dev/null ||
            "$python" -m pip install --quiet --user --break-system-packages "$module" 2>/dev/null ||
            "$python" -m pip install --quiet "$module" || return 1
    done
}

# python_with MODULE...: prints the path of a Python that imports every MODULE (see above);
# fails, saying what it tried, when none does.
python_with() {
    local candidate
    for candidate in python3 /usr/bin/python3; do
        if python_imports "$candidate" "$@"; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v python3 >/dev/null && python_pip_install python3 "$@" && python_imports python3 "$@"; then
        command -v python3
        return 0
    fi
    printf 'no Python imports %s: tried %s, /usr/bin/python3 and pip install for it\n' \
        "$*" "$(command -v python3 || echo 'python3 (not on PATH)')" >&2
    return 1
}
