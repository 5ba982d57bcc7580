// Bash-only constructs with what bash prints for each: under dash (Debian's /bin/sh) each one
// fails or prints something else. Run from an empty directory (some create files).
#pragma once

namespace kiln::testing {

struct BashConstruct {
  const char* name;
  const char* command;
  const char* output;
};

inline constexpr BashConstruct kBashOnlyConstructs[] = {
    {"echo_e", "echo -e 'a\\tb\\nc' > f; cat f", "a\tb\nc\n"},
    {"double_brackets", "[[ abc == a* && 2 -lt 10 ]] && echo yes", "yes\n"},
    {"arrays", "a=(x 'y z' w); echo ${#a[@]} \"${a[1]}\" ${a[@]: -1}", "3 y z w\n"},
    {"source", "echo 'V=42' > v.sh; source v.sh; echo $V", "42\n"},
    {"pipefail", "set -o pipefail; false | true; echo $?", "1\n"},
    {"process_substitution", "cat <(echo from) <(echo sub)", "from\nsub\n"},
    {"brace_expansion", "echo {1..5} x{a,b}", "1 2 3 4 5 xa xb\n"},
    {"globstar",
     "mkdir -p d/e/f && touch d/e/f/x.txt d/y.txt && shopt -s globstar && echo d/**/*.txt",
     "d/e/f/x.txt d/y.txt\n"},
};

}  // namespace kiln::testing
