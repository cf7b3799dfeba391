#!/bin/sh
#
# The layering of src/ (HACKING.md): each file of the library is on a
# floor, and calls files of its own floor or below, never above; files
# may call each other round in a cycle only on the proxy's floor.  The
# call graph is the one of the library's objects, as nm lists their
# symbols, not the source's: file A calls file B when a symbol that A
# leaves undefined is one that B defines.  Prints the floors, every
# upward call (the symbols it uses, data marked so) and every cycle of
# files (with its calls within one floor), then a summary line; exits 1 if
# there is an upward call or a cycle beyond the proxy's floor, 2 if it
# cannot tell (no library built, a file of no floor), else 0.
#
#     contrib/check-layers.sh BUILDDIR [SRCDIR]
#     contrib/check-layers.sh --selftest
#
# SRCDIR, the tree each of whose src/*.c must have a floor, is the one
# this script is in by default.  --selftest runs the check on small
# libraries of its own, compiled with $CC (cc by default), and compares
# what it says with what it should.
set -eu

# The floors, lowest first, and the one place that says which file is on
# which: a number, a name, then the files, as shell patterns of their
# names without the .c.
FLOORS='
1 ground utf8 qmp json counter conf* args acl reply util log fdstore spool qmpclient
2 proxy vm monitor client* cmd cache lock listener trace
3 host host
4 around control* state* restart dump metrics
5 owner server
'
# The floor whose files may call each other round in a cycle.
CYCLE_FLOOR=2

self=$0

# The check itself, of the library built in $1, whose sources are in
# $2/src.
check() {
	build=$1
	src=$2
	la=$build/src/libqmpmux.la
	if [ ! -f "$la" ]; then
		echo "check-layers: $la does not exist: build the library first (make)." >&2
		exit 2
	fi
	# A convenience library, always an archive, whose members are the
	# objects of src/ (PIC ones too when shared libraries are built).
	old=$(sed -n "s/^old_library='\(.*\)'\$/\1/p" "$la")
	archive=$build/src/.libs/$old
	if [ -z "$old" ] || [ ! -f "$archive" ]; then
		echo "check-layers: $la names no archive of its objects: build the library again (make)." >&2
		exit 2
	fi
	srcfiles=
	for f in "$src"/src/*.c; do
		[ -e "$f" ] || continue
		srcfiles="$srcfiles ${f##*/}"
	done
	syms=$(nm -P "$archive")
	printf '%s\n' "$syms" |
	    FLOORS=$FLOORS CYCLE_FLOOR=$CYCLE_FLOOR SRCFILES=$srcfiles awk '
# Sort a[1..n] in place; the lists are short.
function isort(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
}

# The floor of the file named f (without .c), or 0 if it has none.
function floor_of(f,    p) {
	for (p = 1; p <= npat; p++)
		if (f ~ patre[p])
			return patfloor[p]
	return 0
}

# A file as the report names it: its name and its floor.
function room(f) {
	return sprintf("%s.c (floor %d %s)", f, fl[f], fname[fl[f]])
}

# n and a noun, the noun plural unless n is 1.
function count(n, noun) {
	return n " " noun (n == 1 ? "" : "s")
}

# Whether the files of places i and j are one, or reach each other.
function together(i, j) {
	return i == j || (((i, j) in reach) && ((j, i) in reach))
}

# Add the file named f (without .c) to the files, once.
function addfile(f) {
	if (!(f in isfile)) {
		isfile[f] = 1
		file[++nfile] = f
	}
}

# Print the words of s on lines of at most 76 columns, indented by 6.
function wrap(s,    w, n, i, l) {
	n = split(s, w, " ")
	l = "     "
	for (i = 1; i <= n; i++) {
		if (length(l) + 1 + length(w[i]) > 76 && l != "     ") {
			print l
			l = "     "
		}
		l = l " " w[i]
	}
	print l
}

BEGIN {
	cyclefloor = ENVIRON["CYCLE_FLOOR"] + 0
	print "floors (a file calls files of its own floor or below):"
	nl = split(ENVIRON["FLOORS"], line, "\n")
	for (i = 1; i <= nl; i++) {
		nw = split(line[i], w, " ")
		if (nw == 0)
			continue
		fname[w[1] + 0] = w[2]
		s = ""
		for (k = 3; k <= nw; k++) {
			re = w[k]
			gsub(/\?/, ".", re)
			gsub(/\*/, ".*", re)
			patre[++npat] = "^" re "$"
			patfloor[npat] = w[1] + 0
			s = s " " w[k] ".c"
		}
		printf "  %d %-7s%s\n", w[1], w[2] ":", s
	}
}

# An object of the archive, as nm -P heads its symbols: ARCHIVE[FILE.o]:
/\]:$/ {
	m = $0
	sub(/^.*\[/, "", m)
	sub(/\]:$/, "", m)
	sub(/\.o$/, "", m)
	sub(/^[A-Za-z0-9_]*_la-/, "", m)
	addfile(m)
	next
}

# A symbol of it: undefined (weak ones too), or global and defined.
m != "" && NF >= 2 {
	if ($2 == "U" || $2 == "w" || $2 == "v")
		und[++nund] = m " " $1
	else if ($2 ~ /^[BCDGRSTVWiu]$/ && !($1 in def)) {
		def[$1] = m
		dtype[$1] = $2
	}
}

END {
	n = split(ENVIRON["SRCFILES"], w, " ")
	for (i = 1; i <= n; i++) {
		sub(/\.c$/, "", w[i])
		addfile(w[i])
	}
	bad = 0
	for (i = 1; i <= nfile; i++) {
		fl[file[i]] = floor_of(file[i])
		if (!fl[file[i]]) {
			printf "check-layers: src/%s.c has no floor: give it one in the FLOORS of contrib/check-layers.sh.\n", file[i] > "/dev/stderr"
			bad = 1
		}
	}
	if (bad)
		exit 2

	# The files by floor, then by name; idx[f] is the place of f.
	for (i = 1; i <= nfile; i++)
		key[i] = sprintf("%03d %s", fl[file[i]], file[i])
	isort(key, nfile)
	for (i = 1; i <= nfile; i++) {
		split(key[i], w, " ")
		order[i] = w[2]
		idx[w[2]] = i
	}

	# The edges, each with the symbols it stands for.
	nedge = 0
	isort(und, nund)
	for (i = 1; i <= nund; i++) {
		split(und[i], w, " ")
		a = w[1]
		sym = w[2]
		if (!(sym in def) || def[sym] == a)
			continue
		b = def[sym]
		if (!((a, b) in ecount)) {
			edge[++nedge] = sprintf("%03d %s %03d %s",
			    fl[a], a, fl[b], b)
			ecount[a, b] = 0
			esyms[a, b] = ""
			reach[idx[a], idx[b]] = 1
		}
		ecount[a, b]++
		esyms[a, b] = esyms[a, b] " " sym \
		    (dtype[sym] ~ /^[TWi]$/ ? "" : "(data)")
	}
	isort(edge, nedge)

	nup = 0
	nupedge = 0
	for (i = 1; i <= nedge; i++) {
		split(edge[i], w, " ")
		a = w[2]
		b = w[4]
		if (fl[a] >= fl[b])
			continue
		if (nupedge++ == 0)
			print "upward calls (a file calling one of a floor above its own):"
		printf "  %s -> %s: %s\n", room(a), room(b),
		    count(ecount[a, b], "symbol")
		wrap(esyms[a, b])
		nup += ecount[a, b]
	}
	if (nupedge == 0)
		print "upward calls: none"

	# Which file reaches which (Warshall), then the cycles: the sets of
	# files that reach each other, of more than one file.
	for (k = 1; k <= nfile; k++)
		for (i = 1; i <= nfile; i++)
			if ((i, k) in reach)
				for (j = 1; j <= nfile; j++)
					if ((k, j) in reach)
						reach[i, j] = 1
	ncycle = 0
	beyond = 0
	for (i = 1; i <= nfile; i++) {
		if (i in incycle)
			continue
		s = order[i] ".c"
		size = 1
		others = (fl[order[i]] != cyclefloor)
		for (j = i + 1; j <= nfile; j++)
			if (together(i, j)) {
				incycle[j] = 1
				s = s " " order[j] ".c"
				size++
				others += (fl[order[j]] != cyclefloor)
			}
		if (size < 2)
			continue
		if (ncycle++ == 0)
			print "cycles (files that call each other, through others or not):"
		if (others == 0) {
			printf "  allowed, all on floor %d %s:\n", cyclefloor,
			    fname[cyclefloor]
			wrap(s)
			continue
		}
		printf "  NOT allowed, %s beyond floor %d %s:\n",
		    count(others, "file"), cyclefloor, fname[cyclefloor]
		wrap(s)
		beyond += others
		# What closes it besides the upward calls: its calls within
		# one floor but the proxy one.
		for (e = 1; e <= nedge; e++) {
			split(edge[e], w, " ")
			a = w[2]
			b = w[4]
			if (fl[a] != fl[b] || fl[a] == cyclefloor ||
			    !together(i, idx[a]) || !together(i, idx[b]))
				continue
			printf "    %s.c -> %s.c, same floor:\n", a, b
			wrap(esyms[a, b])
		}
	}
	if (ncycle == 0)
		print "cycles: none"

	printf "check-layers: %s (%s), %s in cycles beyond the proxy rooms: %s\n",
	    count(nup, "upward call"), count(nupedge, "edge"),
	    count(beyond, "file"), (nup || beyond) ? "FAIL" : "ok"
	exit (nup || beyond) ? 1 : 0
}
'
}

# Make in $1 a library of the sources that follow, pairs of a name
# (without .c) and its text, as check wants to find it: $1/src/NAME.c,
# and $1/build/src/libqmpmux.la with its archive.
mklib() {
	dir=$1
	shift
	mkdir -p "$dir/src" "$dir/build/src/.libs"
	objs=
	while [ "$#" -ge 2 ]; do
		printf '%s\n' "$2" >"$dir/src/$1.c"
		${CC:-cc} -c -o "$dir/build/src/.libs/$1.o" "$dir/src/$1.c"
		objs="$objs $dir/build/src/.libs/$1.o"
		shift 2
	done
	# shellcheck disable=SC2086 # one word per object
	ar rc "$dir/build/src/.libs/libqmpmux.a" $objs
	printf "old_library='libqmpmux.a'\n" >"$dir/build/src/libqmpmux.la"
}

# Run the check on the library of $1 and compare its status with $2 and
# its output (standard output and error) with each line that follows,
# which must be one of its lines; counts a mismatch in $failed.
expect() {
	dir=$1
	want=$2
	shift 2
	status=0
	sh "$self" "$dir/build" "$dir" >"$dir/out" 2>&1 || status=$?
	ok=1
	if [ "$status" -ne "$want" ]; then
		echo "selftest ${dir##*/}: exit $status, not $want" >&2
		ok=0
	fi
	for l in "$@"; do
		if ! grep -qxF -- "$l" "$dir/out"; then
			echo "selftest ${dir##*/}: no line \"$l\"" >&2
			ok=0
		fi
	done
	if [ "$ok" -eq 1 ]; then
		echo "selftest ${dir##*/}: ok"
	else
		sed 's/^/    /' "$dir/out" >&2
		failed=$((failed + 1))
	fi
}

# The check on libraries of two or three files each, made to pass or
# fail it in each way it can.
selftest() {
	t=$(mktemp -d "${TMPDIR:-/tmp}/check-layers.XXXXXX")
	trap 'rm -rf "$t"' EXIT
	failed=0

	mklib "$t/clean" \
	    util 'int util_a(void) { return 1; }' \
	    server 'int util_a(void); int server_b(void) { return util_a(); }'
	expect "$t/clean" 0 \
	    'upward calls: none' 'cycles: none' \
	    'check-layers: 0 upward calls (0 edges), 0 files in cycles beyond the proxy rooms: ok'

	mklib "$t/upward" \
	    util 'int server_b(void); int server_c(void); extern int server_n;
int util_a(void) { return server_b() + server_c() + server_n; }' \
	    log 'int util_a(void); int log_a(void) { return util_a(); }' \
	    server 'int server_b(void) { return 2; }
int server_c(void) { return 3; }
int server_n = 4;'
	expect "$t/upward" 1 \
	    '  util.c (floor 1 ground) -> server.c (floor 5 owner): 3 symbols' \
	    '      server_b server_c server_n(data)' 'cycles: none' \
	    'check-layers: 3 upward calls (1 edge), 0 files in cycles beyond the proxy rooms: FAIL'

	mklib "$t/proxycycle" \
	    vm 'int client_b(void); int vm_a(void) { return client_b(); }' \
	    client 'int vm_a(void); int client_b(void) { return vm_a(); }' \
	    util 'int util_a(void) { return 1; }'
	expect "$t/proxycycle" 0 \
	    '  allowed, all on floor 2 proxy:' '      client.c vm.c' \
	    'check-layers: 0 upward calls (0 edges), 0 files in cycles beyond the proxy rooms: ok'

	mklib "$t/floorcycle" \
	    state 'int restart_b(void); int state_a(void) { return restart_b(); }' \
	    restart 'int state_a(void); int restart_b(void) { return state_a(); }'
	expect "$t/floorcycle" 1 \
	    'upward calls: none' \
	    '  NOT allowed, 2 files beyond floor 2 proxy:' \
	    '      restart.c state.c' \
	    'check-layers: 0 upward calls (0 edges), 2 files in cycles beyond the proxy rooms: FAIL'

	mklib "$t/mixedcycle" \
	    vm 'int control_x_b(void); int vm_a(void) { return control_x_b(); }' \
	    control_x 'int cmd_c(void); int control_x_b(void) { return cmd_c(); }' \
	    cmd 'int vm_a(void); int cmd_c(void) { return vm_a(); }'
	expect "$t/mixedcycle" 1 \
	    '  vm.c (floor 2 proxy) -> control_x.c (floor 4 around): 1 symbol' \
	    '  NOT allowed, 1 file beyond floor 2 proxy:' \
	    '      cmd.c vm.c control_x.c' \
	    'check-layers: 1 upward call (1 edge), 1 file in cycles beyond the proxy rooms: FAIL'

	mklib "$t/nofloor" \
	    util 'int util_a(void) { return 1; }'
	printf 'int frob;\n' >"$t/nofloor/src/frob.c"
	expect "$t/nofloor" 2 \
	    'check-layers: src/frob.c has no floor: give it one in the FLOORS of contrib/check-layers.sh.'

	mkdir "$t/none"
	expect "$t/none" 2 \
	    "check-layers: $t/none/build/src/libqmpmux.la does not exist: build the library first (make)."

	if [ "$failed" -ne 0 ]; then
		echo "selftest: $failed failed" >&2
		exit 1
	fi
	echo "selftest: all passed"
}

case ${1:-} in
--selftest)
	[ "$#" -eq 1 ] || { echo "usage: check-layers.sh --selftest" >&2; exit 2; }
	selftest
	;;
'' | -*)
	echo "usage: check-layers.sh BUILDDIR [SRCDIR] | --selftest" >&2
	exit 2
	;;
*)
	[ "$#" -le 2 ] || { echo "usage: check-layers.sh BUILDDIR [SRCDIR]" >&2; exit 2; }
	check "$1" "${2:-$(dirname -- "$self")/..}"
	;;
esac
