// SPDX-License-Identifier: Apache-2.0
// Process setup of the kfc-compress executable (startup.cc).
#pragma once

#include <thread>

namespace kfc::tool {

// Builds ONNX's schema registry (check::LoadSchemas) on a thread of its own from construction,
// while the run parses options, checks its files and loads the model; the input check, the first
// user of the registry, then finds it built or waits for the rest. Joined on destruction.
class SchemaPreload {
 public:
  SchemaPreload();
  ~SchemaPreload();
  SchemaPreload(const SchemaPreload&) = delete;
  SchemaPreload& operator=(const SchemaPreload&) = delete;

 private:
  std::thread thread_;
};

// Gives the threads that shared libraries started before main (OpenBLAS's server threads) the
// idle scheduling class, so that their idle spinning runs only on a core nothing else wants. Call
// first thing in main, before this program starts threads of its own.
void IdleLibraryThreads();

}  // namespace kfc::tool
