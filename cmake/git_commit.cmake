# Writes OUT, a C++ source giving the source tree's git commit (with "-dirty" when tracked
# files have changes; "unknown" outside a git checkout), and rewrites it only when that
# changed, so that a build recompiles one file when the commit moves. Run at every build:
#   cmake -DSRC=<source dir> -DOUT=<file> -P git_commit.cmake
set(commit "unknown")
execute_process(COMMAND git -C "${SRC}" rev-parse HEAD OUTPUT_VARIABLE head
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
if(rc EQUAL 0 AND NOT head STREQUAL "")
  set(commit "${head}")
  execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no OUTPUT_VARIABLE changes
                  RESULT_VARIABLE rc ERROR_QUIET)
  if(rc EQUAL 0 AND NOT changes STREQUAL "")
    set(commit "${commit}-dirty")
  endif()
endif()
set(content "// Generated at build time by cmake/git_commit.cmake: the commit this build was made from.\nnamespace diffsde {\nconst char* build_git_commit() { return \"${commit}\"; }\n}  // namespace diffsde\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUT}" "${content}")
endif()
