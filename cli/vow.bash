# bash completion for vow: its commands, each command's options (read
# from its own --help, so they never fall behind), job ids and group names
# from the running queue, files where a file goes.
# Installed as share/bash-completion/completions/vow.

_vow_words_from_help() {
  # Every --long and -s option a command's --help names.
  command vow "$1" --help 2>/dev/null |
    grep -oE '(^|[ ,[])--?[A-Za-z0-9][-A-Za-z0-9]*' |
    sed 's/^[ ,[]//' | sort -u
}

_vow_job_ids() {
  # vow status never starts a daemon: without one, there is nothing.
  command vow status "$@" 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}'
}

_vow_groups() {
  command vow status "$@" 2>/dev/null |
    awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $5} /^group / {sub(":", "", $2); print $2}' |
    sort -u
}

_vow_files() {
  if declare -F _filedir >/dev/null; then
    _filedir "$@"
  else
    local IFS=$'\n'
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}

_vow() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local commands="run map merge submit status wait output cancel remove clean restart parallel pause resume shutdown serve"
  local i cmd="" cmd_at=0 socket=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --socket)
        socket=(--socket "${COMP_WORDS[i + 1]}")
        ((i++))
        ;;
      -*) ;;
      *)
        if [[ -z $cmd ]]; then
          cmd=${COMP_WORDS[i]}
          cmd_at=$i
        fi
        ;;
    esac
  done
  if [[ $prev == --socket ]]; then
    _vow_files
    return
  fi
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "$commands --help --version --socket" -- "$cur"))
    return
  fi
  case $prev in
    --joblog | -a | --arg-file | --results | --res | --workdir | --wd | ::::)
      _vow_files
      return
      ;;
    --group | -g)
      COMPREPLY=($(compgen -W "$(_vow_groups "${socket[@]}")" -- "$cur"))
      return
      ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_vow_words_from_help "$cmd")" -- "$cur"))
    return
  fi
  case $cmd in
    run)
      # The command to run, then files (and ::: lists, which are free).
      local words_after=$((COMP_CWORD - cmd_at)) first_plain=1
      for ((i = cmd_at + 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} != -* ]] && first_plain=0
      done
      if ((first_plain && words_after >= 1)); then
        COMPREPLY=($(compgen -c -- "$cur"))
      else
        COMPREPLY=($(compgen -W "::: :::: :::+ ::::+" -- "$cur"))
        [[ ${#COMPREPLY[@]} -eq 0 ]] && _vow_files
      fi
      ;;
    map | merge)
      _vow_files
      ;;
    submit)
      for ((i = cmd_at + 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == -- ]]; then
          if ((i == COMP_CWORD - 1)); then
            COMPREPLY=($(compgen -c -- "$cur"))
          else
            _vow_files
          fi
          return
        fi
      done
      COMPREPLY=($(compgen -W "--" -- "$cur"))
      ;;
    status | wait | output | cancel | remove | restart)
      COMPREPLY=($(compgen -W "$(_vow_job_ids "${socket[@]}")" -- "$cur"))
      ;;
  esac
}

complete -F _vow vow
