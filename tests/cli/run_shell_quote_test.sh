#!/bin/sh
# vow run --shell: an input can never inject a command, wherever its
# replacement string stands in the command's text (unquoted, in '...', in
# "...", after a \ or a $, in a comment, in $(...), in $((...))), and it
# arrives as exactly its own bytes. Where vow cannot quote a value so
# (backquotes, ${...}, a here-document), the command is refused before
# anything runs.
#   run_shell_quote_test.sh VOW_BINARY
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
in_tmpdir

# Inputs that would each create a file if any part of them ran, one with
# a newline in it; NUL-separated (-0).
cat >lines <<'EOF'
$(touch pwned1)
`touch pwned2`
'; touch pwned3; '
"; touch pwned4; "
\"; touch pwned5; #
it's "quoted" \ $HOME ${HOME} a;b|c&d>e<f*g?h[i]
EOF
tr '\n' '\0' <lines >inputs
printf 'x\ntouch pwned6 #\0' >>inputs
expected="$(cat lines)${nl}x${nl}touch pwned6 #"

pwned() { ls pwned* 2>/dev/null | tr '\n' ' '; }

# printf prints each value back: it must be the input, byte for byte.
for tmpl in "printf '%s\n' {}" "printf '%s\n' '{}'" "printf '%s\n' \"{}\"" \
  "printf '%s\n' \"\$(printf '%s' {})\"" "printf '%s\n' \"\$(printf '%s' '{}')\"" \
  "printf '%s\n' \"\$(printf '%s' \"{}\")\""; do
  $VOW run -k --shell -0 "$tmpl" <inputs >out 2>err
  check "$tmpl: nothing ran" "" "$(pwned)"
  check "$tmpl: each value exactly" "$expected" "$(cat out)"
done

# Around the value, in the same word.
$VOW run -k --shell -0 "printf '%s|%s\n' 'a{}b' \"c{}d\"" <inputs >out 2>err
check "inside quotes with text around: nothing ran" "" "$(pwned)"
check "... each value exactly" "a\$(touch pwned1)b|c\$(touch pwned1)d" "$(sed -n 1p out)"

# After the command's own \ and $: the value is not escaped away, nor
# made into $(...) or ${...}.
$VOW run -k --shell 'printf "%s\n" \{} "\{}" ${} "${}"' ::: '(touch pwned7)' \
  '{HOME}' >out 2>err
check "after \\ and \$: nothing ran" "" "$(pwned)"
check "... each value exactly" \
  "(touch pwned7)${nl}(touch pwned7)${nl}\$(touch pwned7)${nl}\$(touch pwned7)${nl}{HOME}${nl}{HOME}${nl}\${HOME}${nl}\${HOME}" \
  "$(cat out)"

# In a comment: a newline in the value does not end it.
$VOW run -k --shell -0 'echo ok # {}' <inputs >out 2>err
check "in a comment: nothing ran" "" "$(pwned)"
check "... the command ran" 7 "$(grep -c '^ok$' out)"

# In $((...)) sh evaluates the text: numbers go through, anything else
# fails that job, saying why.
$VOW run -k --shell 'echo $(( {} + 1 ))' ::: 41 'a[$(touch pwned8)]' \
  '1)); touch pwned9; echo $((1' >out 2>err
check "in \$((...)): a number" 42 "$(cat out)"
check "... nothing else ran" "" "$(pwned)"
check "... and each refusal says why" 2 \
  "$(grep -c 'stands inside \$((...)), where sh evaluates it' err)"

# Refused before anything runs: backquotes, ${...}, a here-document.
for tmpl in 'echo `echo {}`' 'echo ${HOME:-{}}' "cat <<EOF${nl}{}${nl}EOF"; do
  $VOW run --shell "$tmpl" ::: '$(touch pwned10)' >out 2>err
  check "refused: $tmpl" 255 $?
  check "... says where" 1 "$(grep -c 'where vow cannot quote a value' err)"
done
check "... and nothing ran" "" "$(pwned)"

# The quoting is what runs and what is logged: --dry-run shows it, and
# --retry-failed runs the joblog's command again as it was.
check "--dry-run shows the quoted command" "printf '%s\\n' 'it'\\''s'" \
  "$($VOW run --dry-run --shell "printf '%s\n' '{}'" ::: "it's")"

# Which shell runs the commands: the one vow was started from, as GNU
# parallel picks it (exported bash functions then work where $SHELL is
# unset, as under CI runners and cron), unless $PARALLEL_SHELL says.
# (Each -c script ends in ":" so that the shell stays vow's parent rather
# than exec'ing it.)
shell_of='readlink /proc/$$/exe; true'
check "started from bash, \$SHELL unset: bash" /usr/bin/bash \
  "$(env -u SHELL bash -c '"$1" run --shell "$2" ::: 1; :' - "$VOW" "$shell_of")"
check "started from dash, \$SHELL=bash: dash" /usr/bin/dash \
  "$(SHELL=/bin/bash dash -c '"$1" run --shell "$2" ::: 1; :' - "$VOW" "$shell_of")"
check "an exported bash function runs" "in f: x" \
  "$(env -u SHELL bash -c 'f() { echo "in f: $1"; }; export -f f
    "$1" run --shell f ::: x; :' - "$VOW")"
check "\$PARALLEL_SHELL first" /usr/bin/dash \
  "$(PARALLEL_SHELL=dash bash -c '"$1" run --shell "$2" ::: 1; :' - "$VOW" "$shell_of")"
PARALLEL_SHELL=/nonexistent/bash $VOW run --shell echo ::: 1 >out 2>err
check "\$PARALLEL_SHELL not found: refused" "255 0" "$? $(wc -c <out | tr -d ' ')"
check "... saying so" 1 "$(grep -c 'PARALLEL_SHELL is /nonexistent/bash, which is not found' err)"
PARALLEL_SHELL=csh $VOW run --shell echo ::: 1 >out 2>err
check "\$PARALLEL_SHELL not sh-like: refused" 255 $?
check "... saying why" 1 "$(grep -c "quotes values for sh's grammar" err)"

report
