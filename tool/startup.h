// SPDX-License-Identifier: Apache-2.0
// Process setup of the kfc-compress executable (startup.cc).
#pragma once

namespace kfc::tool {

// Gives the threads that shared libraries started before main (OpenBLAS's server threads) the
// idle scheduling class, so that their idle spinning runs only on a core nothing else wants. Call
// first thing in main, before this program starts threads of its own.
void IdleLibraryThreads();

}  // namespace kfc::tool
