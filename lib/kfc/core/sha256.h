// SHA-256 (FIPS 180-4), for the input digest the output's provenance metadata records
// (kfc_compress.input_sha256): the same hex string `sha256sum` prints for the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kfc {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(const std::string& s) { Update(s.data(), s.size()); }
  // The digest as 64 lowercase hex digits. Call once; the object is spent afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t bytes_ = 0;
};

// The hex digest of `s`.
std::string Sha256Hex(const std::string& s);

}  // namespace kfc
