// Debian base images for tests, built by the real `kiln image build` (debootstrap: one to two
// minutes) into a cache dir shared by every test and later run ($KILN_TEST_IMAGE_CACHE, default
// /var/tmp/kiln-test-images), under a file lock, and rebuilt only when their packages change.
#pragma once
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::testing {

// The images dir holding image `name` (minbase plus `packages`), building it first when it is
// missing or was built with other packages. Errors carry the build's output.
Result<std::string> cachedTestImage(const std::string& name,
                                    const std::vector<std::string>& packages);

}  // namespace kiln::testing
