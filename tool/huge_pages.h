// SPDX-License-Identifier: Apache-2.0
// Transparent huge pages for the kfc-compress process's large allocations (huge_pages.cc).
#pragma once

namespace kfc::tool {

// Reads KFC_HUGE_PAGES: "1" makes allocations of 8 MiB and more ask for transparent huge pages
// from then on; anything else (or unset) leaves them as they are (the default). Call in main.
void UseHugePagesIfAsked();

}  // namespace kfc::tool
