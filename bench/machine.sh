# Sourced by the bench scripts: machine LABEL prints what a recorded run ran on.
machine() {
	echo "== $1"
	date -u
	uname -srm
	echo "CPUs: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
	go version
	echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (with uncommitted changes)')"
}
