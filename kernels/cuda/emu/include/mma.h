/* Kernel-emulation shim for the WMMA API (nvcuda::wmma): see ../wmma_emu.h. */
#pragma once
#include "../wmma_emu.h"
