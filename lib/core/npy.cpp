// NumPy .npy reader and writer for little-endian float64/float32 C-order arrays; the
// reader also takes uint8 ('|u1', e.g. 8-bit images), converted to double.
//
// Format: NEP 1 / numpy.lib.format (https://numpy.org/doc/stable/reference/generated/
// numpy.lib.format.html): the magic "\x93NUMPY", a major and minor version byte, the
// header length (uint16 little-endian for 1.0, uint32 for 2.0 and 3.0), the header (a
// Python dict literal with keys 'descr', 'fortran_order', 'shape', padded with spaces and
// ending in '\n'), then the raw data. The writer follows numpy/lib/format.py
// (_write_array_header, _wrap_header): sorted keys, GROWTH_AXIS_MAX_DIGITS = 21 spare
// spaces minus the digits of shape[0], and padding so the data starts at a multiple of
// ARRAY_ALIGN = 64 bytes. Every error is an IoError naming the file.
#include "diffsde/npy.hpp"

#include <unistd.h>  // getpid, fsync

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"

namespace diffsde {

std::size_t NpyArray::size() const {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return n;
}

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
constexpr std::size_t kArrayAlign = 64;
constexpr std::size_t kGrowthAxisMaxDigits = 21;

bool host_little_endian() {
  const std::uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

template <typename T>
void byteswap_in_place(T* values, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &values[i], sizeof(T));
    for (std::size_t k = 0; k < sizeof(T) / 2; ++k) std::swap(b[k], b[sizeof(T) - 1 - k]);
    std::memcpy(&values[i], b, sizeof(T));
  }
}

// Python's repr of a shape tuple: (), (3,), (2, 3).
std::string shape_repr(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// --------------------------------------------------------------------------------------
// Header parsing: a small recursive-descent parser for the dict literal NumPy writes
// (keys in any order, either quote style, spaces anywhere, optional trailing commas).
struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::size_t> shape;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& file, const std::string& text) : file_(file), s_(text) {}

  Header parse() {
    Header h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (have_descr) fail("duplicate key 'descr'");
        have_descr = true;
        if (peek() != '\'' && peek() != '"')
          throw IoError(file_,
                        "unsupported dtype: structured dtypes are not supported "
                        "(only float64 '<f8' and float32 '<f4')");
        h.descr = string_literal();
      } else if (key == "fortran_order") {
        if (have_fortran) fail("duplicate key 'fortran_order'");
        have_fortran = true;
        h.fortran_order = boolean();
      } else if (key == "shape") {
        if (have_shape) fail("duplicate key 'shape'");
        have_shape = true;
        h.shape = tuple();
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != '}') {
        fail("expected ',' or '}'");
      }
    }
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the closing '}'");
    if (!have_descr) fail("no 'descr' key");
    if (!have_fortran) fail("no 'fortran_order' key");
    if (!have_shape) fail("no 'shape' key");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(file_, "malformed .npy header: " + what + " at offset " + std::to_string(pos_) +
                             " in \"" + s_ + "\"");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++pos_;
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail("escape sequences are not supported");
      ++pos_;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    return s_.substr(start, pos_++ - start);
  }
  bool boolean() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::size_t integer() {
    if (!(peek() >= '0' && peek() <= '9')) fail("expected a non-negative integer");
    std::size_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const std::size_t d = static_cast<std::size_t>(peek() - '0');
      if (v > (std::numeric_limits<std::size_t>::max() - d) / 10) fail("dimension too large");
      v = v * 10 + d;
      ++pos_;
    }
    if (peek() == 'L') ++pos_;  // Python 2 long suffix, as in old files
    return v;
  }
  std::vector<std::size_t> tuple() {
    std::vector<std::size_t> dims;
    expect('(');
    skip_space();
    if (peek() == ')') {
      ++pos_;
      return dims;
    }
    for (;;) {
      dims.push_back(integer());
      skip_space();
      if (peek() == ')') {
        if (dims.size() == 1) fail("a 1-tuple needs a trailing comma, as in (3,)");
        ++pos_;
        return dims;
      }
      expect(',');
      skip_space();
      if (peek() == ')') {
        ++pos_;
        return dims;
      }
    }
  }

  const std::string& file_;
  const std::string& s_;
  std::size_t pos_ = 0;
};

enum class ByteOrder { little, native, big };

// Maps a descr to a dtype, or throws naming what is unsupported.
NpyDtype parse_descr(const std::string& file, const std::string& descr) {
  const std::string supported =
      " (only float64 '<f8', float32 '<f4', uint8 '|u1', int32 '<i4' and int64 '<i8')";
  std::string body = descr;
  ByteOrder order = ByteOrder::native;
  if (!body.empty() && (body[0] == '<' || body[0] == '>' || body[0] == '=' || body[0] == '|')) {
    order = body[0] == '<'   ? ByteOrder::little
            : body[0] == '>' ? ByteOrder::big
                             : ByteOrder::native;
    body = body.substr(1);
  }
  if (body == "u1") return NpyDtype::uint8;  // one byte: the byte order does not matter
  if (body != "f8" && body != "f4" && body != "i8" && body != "i4")
    throw IoError(file, "unsupported dtype '" + descr + "'" + supported);
  const bool little =
      order == ByteOrder::little || (order == ByteOrder::native && host_little_endian());
  if (!little)
    throw IoError(file, "unsupported dtype '" + descr + "': big-endian data" + supported);
  if (body == "i8") return NpyDtype::int64;
  if (body == "i4") return NpyDtype::int32;
  return body == "f8" ? NpyDtype::float64 : NpyDtype::float32;
}

// Reads exactly n bytes, or throws a truncation error.
void read_exact(std::FILE* f, const std::string& path, void* dst, std::size_t n,
                std::size_t expected, std::size_t already, const char* what) {
  const std::size_t got = std::fread(dst, 1, n, f);
  if (got != n) {
    if (std::ferror(f)) throw IoError(path, std::string("read error: ") + std::strerror(errno));
    throw IoError(path, std::string("truncated ") + what + ": expected " +
                            std::to_string(expected) + " bytes, got " +
                            std::to_string(already + got));
  }
}

}  // namespace

// ----------------------------------------------------------------------------------------
NpyArray read_npy(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw IoError(path, "file not found");
  if (fs::is_directory(st)) throw IoError(path, "is a directory, not a .npy file");
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw IoError(path, std::string("cannot open for reading: ") + std::strerror(errno));
  const std::uintmax_t file_size = fs::file_size(path, ec);
  if (ec) throw IoError(path, "cannot get the file size: " + ec.message());

  unsigned char prefix[kMagicLen + 2];
  const std::size_t got = std::fread(prefix, 1, sizeof prefix, f.get());
  if (got < kMagicLen || std::memcmp(prefix, kMagic, kMagicLen) != 0)
    throw IoError(path, "not a .npy file (bad magic string; expected \"\\x93NUMPY\")");
  if (got < sizeof prefix) throw IoError(path, "truncated header: no format version");
  const int major = prefix[6], minor = prefix[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    throw IoError(path, "unsupported .npy format version " + std::to_string(major) + "." +
                            std::to_string(minor) + " (versions 1.0, 2.0 and 3.0 are read)");
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  unsigned char len_buf[4] = {0, 0, 0, 0};
  read_exact(f.get(), path, len_buf, len_bytes, len_bytes, 0, "header length");
  std::size_t header_len = 0;
  for (std::size_t i = len_bytes; i-- > 0;) header_len = (header_len << 8) | len_buf[i];
  const std::size_t data_offset = kMagicLen + 2 + len_bytes + header_len;
  if (file_size < data_offset)
    throw IoError(path, "truncated header: expected " + std::to_string(header_len) +
                            " bytes, got " +
                            std::to_string(file_size - (kMagicLen + 2 + len_bytes)));
  std::string text(header_len, '\0');
  read_exact(f.get(), path, text.data(), header_len, header_len, 0, "header");

  const Header h = HeaderParser(path, text).parse();
  const NpyDtype dtype = parse_descr(path, h.descr);
  if (h.fortran_order)
    throw IoError(path,
                  "Fortran-order arrays (fortran_order: True) are not supported; "
                  "save a C-order array (numpy.ascontiguousarray)");

  NpyArray a;
  a.shape = h.shape;
  std::size_t count = 1;
  for (std::size_t d : a.shape) {
    if (d != 0 && count > std::numeric_limits<std::size_t>::max() / d)
      throw IoError(path, "shape " + shape_repr(a.shape) + " is too large");
    count *= d;
  }
  const std::size_t item = dtype == NpyDtype::float64 || dtype == NpyDtype::int64   ? 8
                           : dtype == NpyDtype::float32 || dtype == NpyDtype::int32 ? 4
                                                                                    : 1;
  if (count > std::numeric_limits<std::size_t>::max() / item)
    throw IoError(path, "shape " + shape_repr(a.shape) + " is too large");
  const std::size_t expected = count * item;
  const std::uintmax_t available = file_size - data_offset;
  if (available < expected)
    throw IoError(path, "truncated data: expected " + std::to_string(expected) + " bytes, got " +
                            std::to_string(available));
  if (available > expected)
    throw IoError(path, std::to_string(available - expected) +
                            " unexpected bytes after the data (shape " + shape_repr(a.shape) +
                            " needs " + std::to_string(expected) + " bytes)");

  a.data.resize(count);
  a.dtype = dtype;
  if (dtype == NpyDtype::int64 || dtype == NpyDtype::int32) {
    a.ints.resize(count);
    if (dtype == NpyDtype::int64) {
      read_exact(f.get(), path, a.ints.data(), expected, expected, 0, "data");
      if (!host_little_endian()) byteswap_in_place(a.ints.data(), count);
    } else {
      std::vector<std::int32_t> buf(count);
      read_exact(f.get(), path, buf.data(), expected, expected, 0, "data");
      if (!host_little_endian()) byteswap_in_place(buf.data(), count);
      for (std::size_t i = 0; i < count; ++i) a.ints[i] = buf[i];
    }
    for (std::size_t i = 0; i < count; ++i) a.data[i] = static_cast<double>(a.ints[i]);
  } else if (dtype == NpyDtype::uint8) {
    std::vector<unsigned char> bytes(count);
    read_exact(f.get(), path, bytes.data(), expected, expected, 0, "data");
    for (std::size_t i = 0; i < count; ++i) a.data[i] = static_cast<double>(bytes[i]);
  } else if (dtype == NpyDtype::float64) {
    read_exact(f.get(), path, a.data.data(), expected, expected, 0, "data");
    if (!host_little_endian()) byteswap_in_place(a.data.data(), count);
  } else {
    constexpr std::size_t chunk = 1 << 14;
    std::vector<float> buf(std::min(count, chunk));
    for (std::size_t done = 0; done < count;) {
      const std::size_t n = std::min(chunk, count - done);
      read_exact(f.get(), path, buf.data(), n * 4, expected, done * 4, "data");
      if (!host_little_endian()) byteswap_in_place(buf.data(), n);
      for (std::size_t i = 0; i < n; ++i) a.data[done + i] = static_cast<double>(buf[i]);
      done += n;
    }
  }
  return a;
}

// ----------------------------------------------------------------------------------------
namespace {

// The header bytes (magic, version, length, dict, padding, '\n') as NumPy writes them.
std::string npy_header(const std::vector<std::size_t>& shape, NpyDtype dtype) {
  std::string dict = std::string("{'descr': '") + (dtype == NpyDtype::float64 ? "<f8" : "<f4") +
                     "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  if (!shape.empty()) dict.append(kGrowthAxisMaxDigits - std::to_string(shape[0]).size(), ' ');
  const std::size_t hlen = dict.size() + 1;  // + '\n'
  for (int major : {1, 2}) {
    const std::size_t len_bytes = major == 1 ? 2 : 4;
    const std::size_t pad = kArrayAlign - ((kMagicLen + 2 + len_bytes + hlen) % kArrayAlign);
    const std::size_t total = hlen + pad;
    if (major == 1 && total > 0xffff) continue;
    std::string out(kMagic, kMagicLen);
    out += static_cast<char>(major);
    out += static_cast<char>(0);
    for (std::size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((total >> (8 * i)) & 0xff);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  }
  return {};  // unreachable: a 2.0 header holds 4 GiB
}

}  // namespace

void write_npy(const std::string& path, const NpyArray& array, NpyDtype dtype) {
  if (dtype != NpyDtype::float64 && dtype != NpyDtype::float32)
    throw IoError(path, "uint8 and integer .npy files are read, not written");
  std::size_t count = 1;
  for (std::size_t d : array.shape) {
    if (d != 0 && count > std::numeric_limits<std::size_t>::max() / d)
      throw IoError(path, "shape " + shape_repr(array.shape) + " is too large");
    count *= d;
  }
  if (array.data.size() != count)
    throw IoError(path, "cannot write: the data has " + std::to_string(array.data.size()) +
                            " values but shape " + shape_repr(array.shape) + " needs " +
                            std::to_string(count));

  const std::string header = npy_header(array.shape, dtype);
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  std::FILE* raw = std::fopen(tmp.c_str(), "wb");
  if (!raw)
    throw IoError(path, "cannot create temporary file " + tmp + ": " + std::strerror(errno));
  File f(raw);
  auto fail = [&](const std::string& what) {
    const int err = errno;
    f.reset();
    std::remove(tmp.c_str());
    throw IoError(path, what + ": " + std::strerror(err));
  };

  if (std::fwrite(header.data(), 1, header.size(), f.get()) != header.size())
    fail("cannot write the header");
  const bool swap = !host_little_endian();
  constexpr std::size_t chunk = 1 << 14;
  if (dtype == NpyDtype::float64) {
    if (!swap) {
      if (count && std::fwrite(array.data.data(), 8, count, f.get()) != count)
        fail("cannot write the data");
    } else {
      std::vector<double> buf;
      for (std::size_t done = 0; done < count; done += chunk) {
        const std::size_t n = std::min(chunk, count - done);
        buf.assign(array.data.begin() + static_cast<std::ptrdiff_t>(done),
                   array.data.begin() + static_cast<std::ptrdiff_t>(done + n));
        byteswap_in_place(buf.data(), n);
        if (std::fwrite(buf.data(), 8, n, f.get()) != n) fail("cannot write the data");
      }
    }
  } else {
    std::vector<float> buf;
    for (std::size_t done = 0; done < count; done += chunk) {
      const std::size_t n = std::min(chunk, count - done);
      buf.resize(n);
      for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(array.data[done + i]);
      if (swap) byteswap_in_place(buf.data(), n);
      if (std::fwrite(buf.data(), 4, n, f.get()) != n) fail("cannot write the data");
    }
  }
  if (std::fflush(f.get()) != 0) fail("cannot write the data");
  if (::fsync(::fileno(f.get())) != 0) fail("cannot sync the data to disk");
  if (std::fclose(f.release()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw IoError(path, std::string("cannot close the temporary file: ") + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw IoError(path, "cannot rename " + tmp + " to it: " + std::strerror(err));
  }
}

State read_npy_state(const std::string& path) {
  NpyArray a = read_npy(path);
  if (a.shape.size() != 2)
    throw IoError(path, "expected a 2-D array (rows, cols), got shape " + shape_repr(a.shape));
  State s(static_cast<Eigen::Index>(a.shape[0]), static_cast<Eigen::Index>(a.shape[1]));
  if (!a.data.empty()) std::copy(a.data.begin(), a.data.end(), s.data());  // row-major = C order
  return s;
}

void write_npy(const std::string& path, const State& state, NpyDtype dtype) {
  NpyArray a;
  a.shape = {static_cast<std::size_t>(state.rows()), static_cast<std::size_t>(state.cols())};
  a.data.assign(state.data(), state.data() + state.size());
  write_npy(path, a, dtype);
}

}  // namespace diffsde
