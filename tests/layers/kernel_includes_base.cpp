// Must compile (test build.layers_base_below_kernels): the base layer is below the kernels.
#include "core/types.hpp"
#include "kernels/conv2d.hpp"
