// Provenance of the outputs: SHA-256 against the published known answers (FIPS 180-2,
// appendix B), the files a config names, the defaults filled in, and the build's identity.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "diffsde/error.hpp"
#include "diffsde/provenance.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
using nlohmann::json;

TEST_CASE("SHA-256 of strings and files matches the published known answers") {
  CHECK(sha256_text("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_text("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  test::TempDir dir;
  {
    // One million 'a' (FIPS 180-2, B.3): crosses the reader's 64 KiB buffer many times.
    std::ofstream out(dir.file("a.bin"), std::ios::binary);
    out << std::string(1000000, 'a');
  }
  CHECK(sha256_file(dir.file("a.bin")) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  const json info = file_info_json(dir.file("a.bin"));
  CHECK(info["bytes"] == 1000000);
  CHECK(info["sha256"] == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  CHECK_THROWS_AS(sha256_file(dir.file("missing.bin")), IoError);
  CHECK_THROWS_WITH(file_info_json(dir.file("missing.bin")), Catch::Contains("missing.bin"));
}

TEST_CASE("with_defaults fills each registry object's defaults and leaves the rest") {
  const json config = {{"schedule", "vp_linear"},
                       {"model", {{"name", "gaussian"}, {"mean", {0.0}}}},
                       {"grid", {{"name", "logSNR"}, {"steps", 7}}},
                       {"solver", {{"name", "ddim"}}},
                       {"batch", 3},
                       {"noise", "philox"}};
  const json full = with_defaults(config);
  CHECK(full["schedule"]["name"] == "vp_linear");
  CHECK(full["schedule"]["beta0"] == 0.1);
  CHECK(full["schedule"]["beta1"] == 20.0);
  CHECK(full["model"]["mean"] == json::array({0.0}));  // given: kept
  CHECK(full["grid"]["steps"] == 7);
  CHECK(full["grid"]["t_last"] == 1e-3);
  CHECK(full["solver"]["eta"] == 0.0);
  CHECK(full["batch"] == 3);
  CHECK(full["noise"] == "philox");
  // An unknown name is left for the run to refuse.
  const json odd = with_defaults(json{{"solver", {{"name", "no_such_solver"}}}});
  CHECK(odd["solver"] == json{{"name", "no_such_solver"}});
}

TEST_CASE("The files a config names, relative to its folder, each once") {
  test::TempDir dir;
  for (const char* name : {"x.npy", "net.pt", "labels.npy"}) std::ofstream(dir.file(name)) << name;
  const json config = {{"init", "x.npy"},
                       {"model", {{"name", "torchscript"}, {"path", "net.pt"}}},
                       {"cond", {{"y", "labels.npy"}, {"z", "absent.npy"}}},
                       {"solver", "ddim"},
                       {"again", {"x.npy"}}};
  const auto files = config_input_files(config, dir.path.string(), {dir.file("data.npy")});
  REQUIRE(files.size() == 4);
  // nlohmann's objects iterate in key order: again, cond, init, model, solver.
  CHECK(files[0] == dir.file("x.npy"));
  CHECK(files[1] == dir.file("labels.npy"));
  CHECK(files[2] == dir.file("net.pt"));
  CHECK(files[3] == dir.file("data.npy"));
}

TEST_CASE("The build's identity and the provenance object") {
  const json build = build_info_json();
  CHECK(build["version"].is_string());
  CHECK_FALSE(build["version"].get<std::string>().empty());
  const std::string commit = build["commit"];
  // A 40-digit commit (with -dirty when the tree had changes), or unknown outside git.
  CHECK((commit == "unknown" || commit.size() == 40 || commit.size() == 46));
  test::TempDir dir;
  std::ofstream(dir.file("c.json")) << "{}";
  const json p = provenance_json(json{{"batch", 1}}, {dir.file("c.json")});
  CHECK(p["diffsde"] == build);
  CHECK(p["config"]["batch"] == 1);
  CHECK(p["inputs"][0]["sha256"] == sha256_text("{}"));
  write_npy_sidecar(dir.file("s.npy"), p, {4, 2});
  std::ifstream in(dir.file("s.npy.json"));
  const json sidecar = json::parse(in);
  CHECK(sidecar["file"] == "s.npy");
  CHECK(sidecar["shape"] == json::array({4, 2}));
  CHECK(sidecar["provenance"] == p);
}
