// `kiln image build|list`: base images for sandboxes (image.h).
#pragma once

namespace kiln::sandbox::image {

// argv[0] is "image". Returns the process exit code.
int imageCommandMain(int argc, char** argv);

}  // namespace kiln::sandbox::image
