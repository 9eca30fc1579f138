// Must not compile (test build.layers_models_below_training): the models' include path has no
// train/ or methods/ (CMakeLists.txt: DMIS_LAYERS).
#include "methods/method_step.hpp"
