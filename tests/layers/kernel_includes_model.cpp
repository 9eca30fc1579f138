// Must not compile (test build.layers_kernels_below_models): the kernels' include path has no
// models/ (CMakeLists.txt: DMIS_LAYERS).
#include "models/unet.hpp"
