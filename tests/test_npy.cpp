// .npy reader and writer: round trips, exact bytes, header variants, malformed files
// and atomic writes.
#include <catch2/catch.hpp>
#include <unistd.h>  // getpid

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
namespace fs = std::filesystem;

namespace {

using diffsde::test::TempDir;

std::string slurp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A .npy file with a hand-written header dict (padded to 64 bytes) and raw data.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((6 + 2 + len_bytes + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (std::size_t i = 0; i < len_bytes; ++i)
    out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());  // tests run on little-endian hosts
  return s;
}

NpyArray make_array(std::vector<std::size_t> shape) {
  NpyArray a;
  a.shape = std::move(shape);
  for (std::size_t i = 0; i < a.size(); ++i)
    a.data.push_back(std::ldexp(static_cast<double>(i) - 3.0, static_cast<int>(i % 5)) + 0.1 * i);
  return a;
}

}  // namespace

TEST_CASE("npy round trips float64 and float32 for 0-d to 3-d", "[npy]") {
  TempDir dir;
  const std::vector<std::vector<std::size_t>> shapes = {{},     {5},       {2, 3}, {2, 3, 4},   {0},
                                                        {3, 0}, {1, 1, 1}, {1, 7}, {2, 1, 3, 1}};
  for (const auto& shape : shapes) {
    const NpyArray a = make_array(shape);
    INFO("ndim " << shape.size() << ", size " << a.size());
    const std::string f64 = dir.file("a64.npy"), f32 = dir.file("a32.npy");
    write_npy(f64, a);
    write_npy(f32, a, NpyDtype::float32);
    const NpyArray b = read_npy(f64), c = read_npy(f32);
    CHECK(b.shape == shape);
    CHECK(b.data == a.data);
    CHECK(c.shape == shape);
    REQUIRE(c.data.size() == a.data.size());
    for (std::size_t i = 0; i < a.data.size(); ++i)
      CHECK(c.data[i] == static_cast<double>(static_cast<float>(a.data[i])));
    // Data starts at a multiple of 64 bytes; sizes are exact.
    const std::string bytes = slurp(f64);
    const std::size_t header_len =
        static_cast<unsigned char>(bytes[8]) |
        (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    CHECK((10 + header_len) % 64 == 0);
    CHECK(bytes.size() == 10 + header_len + 8 * a.size());
    CHECK(bytes[10 + header_len - 1] == '\n');
    CHECK(fs::file_size(f32) == 10 + header_len + 4 * a.size());
  }
  CHECK(dir.entries() == 2);  // no temporary files left behind

  // Special values survive float64.
  NpyArray s;
  s.shape = {5};
  s.data = {std::numeric_limits<double>::infinity(), -0.0,
            std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max(),
            std::nan("")};
  write_npy(dir.file("s.npy"), s);
  const NpyArray t = read_npy(dir.file("s.npy"));
  CHECK(std::isinf(t.data[0]));
  CHECK(std::signbit(t.data[1]));
  CHECK(t.data[2] == s.data[2]);
  CHECK(t.data[3] == s.data[3]);
  CHECK(std::isnan(t.data[4]));
}

TEST_CASE("npy writer produces NumPy's exact bytes", "[npy]") {
  // np.save of np.array([[0, 1, 2], [0.5, -1, 4]]) (NumPy >= 1.24): a 1.0 header of
  // 118 bytes = the dict, 21 - len("2") = 20 spare spaces, 38 bytes of padding to a
  // 128-byte prefix, and '\n'.
  std::string expect("\x93NUMPY\x01\x00\x76\x00", 10);
  expect += "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  expect += std::string(58, ' ');
  expect += '\n';
  REQUIRE(expect.size() == 128);
  const unsigned char data[] = {
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 0.0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,  // 1.0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40,  // 2.0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f,  // 0.5
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0xbf,  // -1.0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x40,  // 4.0
  };
  expect.append(reinterpret_cast<const char*>(data), sizeof data);

  TempDir dir;
  State s(2, 3);
  s << 0.0, 1.0, 2.0, 0.5, -1.0, 4.0;
  write_npy(dir.file("x.npy"), s);
  CHECK(slurp(dir.file("x.npy")) == expect);
  const State back = read_npy_state(dir.file("x.npy"));
  CHECK((back == s).all());

  // 0-d: no spare spaces; '<f4' descr; 10 + 55 + 1 bytes padded to 128.
  NpyArray scalar;
  scalar.data = {1.0};
  write_npy(dir.file("s.npy"), scalar, NpyDtype::float32);
  const std::string bytes = slurp(dir.file("s.npy"));
  CHECK(bytes.substr(10, 55) == "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
  CHECK(bytes.size() == 132);
  CHECK(bytes.substr(128) == std::string("\x00\x00\x80\x3f", 4));
}

TEST_CASE("npy reader accepts the header variants NumPy and others write", "[npy]") {
  TempDir dir;
  const std::string f = dir.file("v.npy");
  const std::string d6 = raw(std::vector<double>{1, 2, 3, 4, 5, 6});
  struct Case {
    std::string dict;
    int major;
  };
  for (const Case& c : {
           Case{"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 1},
           Case{"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}", 1},
           Case{"{ \"descr\" : \"<f8\" , \"fortran_order\":False,\"shape\":( 2 ,3 ) }", 1},
           Case{"{'descr': 'f8', 'fortran_order': False, 'shape': (2, 3,), }", 1},
           Case{"{'descr': '=f8', 'fortran_order': False, 'shape': (2L, 3L), }", 1},
           Case{"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 2},
           Case{"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 3},
       }) {
    INFO(c.dict << " version " << c.major);
    spit(f, npy_bytes(c.dict, d6, c.major));
    const NpyArray a = read_npy(f);
    CHECK(a.shape == std::vector<std::size_t>{2, 3});
    CHECK(a.data == std::vector<double>{1, 2, 3, 4, 5, 6});
  }
  spit(f, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                    raw(std::vector<float>{0.5f, -2.0f, 1e-3f})));
  const NpyArray a = read_npy(f);
  CHECK(a.shape == std::vector<std::size_t>{3});
  CHECK(a.data == std::vector<double>{0.5, -2.0, static_cast<double>(1e-3f)});
}

TEST_CASE("Malformed npy files give an IoError naming the file and the problem", "[npy]") {
  TempDir dir;
  const std::string f = dir.file("bad.npy");
  const std::string d6 = raw(std::vector<double>{1, 2, 3, 4, 5, 6});
  const std::string good = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  struct Case {
    std::string name, bytes, message;
  };
  std::string bad_magic = npy_bytes(good, d6);
  bad_magic[1] = 'X';
  std::string bad_version = npy_bytes(good, d6);
  bad_version[6] = 4;
  const std::vector<Case> cases = {
      {"bad magic", bad_magic, "bad magic"},
      {"empty file", "", "bad magic"},
      {"version 4.0", bad_version, "unsupported .npy format version 4.0"},
      {"big-endian", npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", d6),
       "unsupported dtype '>f8': big-endian"},
      {"int16 dtype", npy_bytes("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", d6),
       "unsupported dtype '<i2' (only float64 '<f8', float32 '<f4', uint8 '|u1', int32 '<i4' and int64 '<i8')"},
      {"structured dtype",
       npy_bytes("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", d6),
       "structured dtypes are not supported"},
      {"Fortran order", npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", d6),
       "Fortran-order"},
      {"truncated data", npy_bytes(good, d6.substr(0, 40)),
       "truncated data: expected 48 bytes, got 40"},
      {"trailing data", npy_bytes(good, d6 + "xx"), "2 unexpected bytes after the data"},
      {"truncated header", npy_bytes(good, d6).substr(0, 50), "truncated header"},
      {"missing key", npy_bytes("{'descr': '<f8', 'fortran_order': False, }", ""),
       "no 'shape' key"},
      {"unknown key",
       npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), 'x': 1}", d6.substr(0, 8)),
       "unexpected key 'x'"},
      {"bad shape", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }", d6),
       "malformed .npy header"},
      {"1-tuple without comma",
       npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (6), }", d6), "(3,)"},
      {"no dict", npy_bytes("descr", d6), "expected '{'"},
      {"bad fortran_order",
       npy_bytes("{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 3), }", d6),
       "expected True or False"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    spit(f, c.bytes);
    CHECK_THROWS_AS(read_npy(f), IoError);
    CHECK_THROWS_WITH(read_npy(f), Catch::StartsWith(f + ": ") && Catch::Contains(c.message));
    try {
      read_npy(f);
    } catch (const IoError& e) {
      CHECK(e.file() == f);
    }
  }
  CHECK_THROWS_WITH(read_npy(dir.file("missing.npy")),
                    Catch::Contains(dir.file("missing.npy")) && Catch::Contains("file not found"));
  CHECK_THROWS_WITH(read_npy(dir.path.string()), Catch::Contains("is a directory"));
}

TEST_CASE("read_npy_state requires a 2-D array", "[npy]") {
  TempDir dir;
  NpyArray a = make_array({5});
  write_npy(dir.file("v.npy"), a);
  CHECK_THROWS_AS(read_npy_state(dir.file("v.npy")), IoError);
  CHECK_THROWS_WITH(read_npy_state(dir.file("v.npy")), Catch::Contains(dir.file("v.npy")) &&
                                                           Catch::Contains("2-D") &&
                                                           Catch::Contains("(5,)"));
  State s(4, 3);
  for (Eigen::Index i = 0; i < s.size(); ++i) s.data()[i] = 1.0 / (1.0 + static_cast<double>(i));
  write_npy(dir.file("s.npy"), s);
  const NpyArray raw_back = read_npy(dir.file("s.npy"));
  CHECK(raw_back.shape == std::vector<std::size_t>{4, 3});
  CHECK(raw_back.data[5] == s(1, 2));  // C order
  CHECK((read_npy_state(dir.file("s.npy")) == s).all());
}

TEST_CASE("A failed write leaves the existing file intact and no temp file", "[npy]") {
  TempDir dir;
  const std::string f = dir.file("keep.npy");
  const NpyArray good = make_array({2, 3});
  write_npy(f, good);
  const std::string before = slurp(f);

  NpyArray mismatch;
  mismatch.shape = {2, 3};
  mismatch.data = {1, 2, 3};
  CHECK_THROWS_AS(write_npy(f, mismatch), IoError);
  CHECK_THROWS_WITH(write_npy(f, mismatch),
                    Catch::Contains(f) && Catch::Contains("3 values") && Catch::Contains("(2, 3)"));
  CHECK(slurp(f) == before);
  CHECK(dir.entries() == 1);
  // Nothing is created when the data does not match.
  CHECK_THROWS_AS(write_npy(dir.file("new.npy"), mismatch), IoError);
  CHECK_FALSE(fs::exists(dir.file("new.npy")));
  CHECK(dir.entries() == 1);

  // The target is a (non-empty) folder: the rename fails, the temp file is removed.
  fs::create_directories(dir.path / "sub" / "x");
  CHECK_THROWS_AS(write_npy(dir.file("sub"), good), IoError);
  CHECK(fs::is_directory(dir.path / "sub" / "x"));
  CHECK(dir.entries() == 2);
  // The folder does not exist: nothing can be created.
  CHECK_THROWS_WITH(write_npy(dir.file("nope/a.npy"), good), Catch::Contains("nope/a.npy"));
  CHECK(dir.entries() == 2);

  // Overwriting replaces the content whole.
  const NpyArray other = make_array({4});
  write_npy(f, other);
  CHECK(read_npy(f).data == other.data);
  CHECK(dir.entries() == 2);
}

TEST_CASE("Files round trip through NumPy when it is installed", "[npy][numpy]") {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    WARN("skipped: /usr/bin/python3 with numpy not available");
    return;
  }
  TempDir dir;
  const NpyArray a = make_array({2, 3, 4});
  write_npy(dir.file("ours.npy"), a);
  const std::string script = "import numpy as np; a = np.load('" + dir.file("ours.npy") +
                             "'); assert a.shape == (2, 3, 4) and a.dtype == np.float64; "
                             "np.save('" +
                             dir.file("theirs.npy") +
                             "', (a * 2).astype(np.float32)); "
                             "open('" +
                             dir.file("same_bytes") + "', 'w').write(str(open('" +
                             dir.file("ours.npy") +
                             "', 'rb').read() == (lambda f: (np.save(f, a), "
                             "f.getvalue())[1])(__import__('io').BytesIO())))";
  REQUIRE(std::system(("/usr/bin/python3 -c \"" + script + "\"").c_str()) == 0);
  const NpyArray b = read_npy(dir.file("theirs.npy"));
  CHECK(b.shape == a.shape);
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(b.data[i] == static_cast<double>(static_cast<float>(2 * a.data[i])));
  CHECK(slurp(dir.file("same_bytes")) == "True");
}
