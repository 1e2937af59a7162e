// Store benchmark: the train pipeline (read + RandomResizedCrop to 224 + normalise) from an HDF5
// store versus decoding the same images from JPEG files per sample, side by side in one run;
// then the prefetch loader with 1 and 2 worker threads; then what gzip costs and saves.
//
//   build/bench/store_bench [--images 400] [--jpeg-dir DIR] [--workers 2] [--seconds 3] [--write-only]
//
// --write-only measures only the store writer (pre-decoded images with label, caption and source
// through StoreWriter), e.g. to compare two builds of the write path on the same machine.
//
// Without --jpeg-dir it writes synthetic 500x375 JPEGs (ImageNet's typical size) to a scratch
// directory. Give --jpeg-dir a folder of real photos to measure them instead.
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <cstdlib>
#include <numeric>

#include "data/augment.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/rng.h"
#include "data/shard_writer.h"
#include "data/store.h"
#include "bench_main.h"

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace starft::data;
using Clock = std::chrono::steady_clock;
using starft::bench::seconds_since;

namespace {

double cpu_seconds(clockid_t clock) {
  timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// Items per second of wall-clock time and per second of CPU time. The CPU figure is what a
// core does when it is not shared: this machine is often loaded by other work, which slows
// the wall-clock figures of every measurement alike.
struct Rate {
  double wall = 0, cpu = 0;
};

Rate best(Rate a, Rate b) { return {std::max(a.wall, b.wall), std::max(a.cpu, b.cpu)}; }

double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : 0;
}

// A photo-like synthetic image: smooth colour fields, edges and sensor noise, so JPEG sizes and
// decode costs are close to a real photo's (about 60-120 KB at 500x375, quality 90).
cv::Mat synthetic_photo(int w, int h, uint64_t seed) {
  Rng rng({seed});
  cv::Mat small(6, 8, CV_8UC3);
  for (int i = 0; i < small.rows * small.cols * 3; ++i) small.data[i] = static_cast<uint8_t>(rng.below(256));
  cv::Mat img;
  cv::resize(small, img, cv::Size(w, h), 0, 0, cv::INTER_CUBIC);
  for (int k = 0; k < 12; ++k) {
    cv::Point c(static_cast<int>(rng.below(w)), static_cast<int>(rng.below(h)));
    cv::Scalar colour(rng.below(256), rng.below(256), rng.below(256));
    if (k % 2)
      cv::circle(img, c, 10 + static_cast<int>(rng.below(60)), colour, cv::FILLED, cv::LINE_AA);
    else
      cv::line(img, c, cv::Point(static_cast<int>(rng.below(w)), static_cast<int>(rng.below(h))), colour, 2,
               cv::LINE_AA);
  }
  cv::Mat noise(h, w, CV_16SC3);
  cv::randn(noise, 0, 10);
  cv::Mat out;
  img.convertTo(out, CV_16SC3);
  out += noise;
  out.convertTo(img, CV_8UC3);
  return img;
}

// Runs `step(i)` over i = 0, 1, ... (wrapping at n) on this thread for at least `seconds`.
template <typename F>
Rate rate(int64_t n, double seconds, F step) {
  auto start = Clock::now();
  double cpu0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
  int64_t done = 0;
  while (true) {
    for (int64_t i = 0; i < n; ++i) step((done + i) % n);
    done += n;
    double t = seconds_since(start);
    if (t >= seconds) return {done / t, done / (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0)};
  }
}

int64_t dir_bytes(const fs::path& dir) {
  int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += static_cast<int64_t>(e.file_size());
  return total;
}

}  // namespace

STARFT_BENCH_MAIN(store_bench) {
  int images = 400, workers = 2, store_size = 256, output = 224;
  double seconds = 3;
  std::string jpeg_dir;
  bool write_only = false;
  po::options_description options("store_bench options");
  options.add_options()("help,h", "show this help")("images", po::value(&images)->default_value(400),
                                                    "number of synthetic JPEGs to generate")(
      "jpeg-dir", po::value(&jpeg_dir), "use the JPEG files in this folder instead of synthetic ones")(
      "workers", po::value(&workers)->default_value(2), "augmentation threads of the loader measurement")(
      "seconds", po::value(&seconds)->default_value(3.0), "minimum duration of each measurement")(
      "store-size", po::value(&store_size)->default_value(256), "stored image side")(
      "output", po::value(&output)->default_value(224), "augmented image side")(
      "write-only", po::bool_switch(&write_only), "measure only the store writer");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "store_bench: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  // One thread per measurement: "per core" means what one thread does; the loader measurement
  // sets its own parallelism.
  cv::setNumThreads(1);
  spdlog::set_level(spdlog::level::warn);

  fs::path scratch = fs::temp_directory_path() / ("starft-store-bench-" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  std::vector<std::string> files;
  if (jpeg_dir.empty()) {
    fs::create_directories(scratch / "jpeg");
    for (int i = 0; i < images; ++i) {
      std::string path = (scratch / "jpeg" / ("img_" + std::to_string(i) + ".jpg")).string();
      cv::imwrite(path, synthetic_photo(500, 375, i), {cv::IMWRITE_JPEG_QUALITY, 90});
      files.push_back(path);
    }
  } else {
    for (const auto& e : fs::recursive_directory_iterator(jpeg_dir)) {
      auto ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".jpg" || ext == ".JPEG" || ext == ".jpeg"))
        files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (static_cast<int>(files.size()) > images) files.resize(images);
  }
  const int64_t n = static_cast<int64_t>(files.size());
  if (n == 0) {
    std::cerr << "store_bench: no JPEG files\n";
    return 2;
  }
  int64_t jpeg_bytes = 0;
  for (const auto& f : files) jpeg_bytes += static_cast<int64_t>(fs::file_size(f));

  // Convert to stores: uncompressed, and gzip levels 1 and 4.
  auto write_store = [&](const fs::path& dir, int compression) {
    Manifest m;
    m.dataset = "bench";
    m.split = "train";
    m.class_names = {"x"};
    m.image_size = store_size;
    m.shard_size = 256;
    m.compression = compression;
    auto start = Clock::now();
    StoreWriter writer(dir.string(), m, true);
    for (int64_t i = 0; i < n; ++i) {
      SampleMeta meta;
      meta.source = files[i];
      writer.add(read_image_rgb(files[i]), meta);
    }
    writer.finish();
    return n / seconds_since(start);
  };

  // 0. The writer alone: pre-decoded images with a label, a caption and a source (a CSV store's
  //    fields) through StoreWriter, uncompressed, shards of 256. Best of five whole-store writes.
  struct WriteRate {
    Rate rate;
    double bytes_per_image = 0;
  };
  auto writer_rate = [&] {
    std::vector<cv::Mat> fitted;
    for (const auto& f : files) fitted.push_back(fit_square(read_image_rgb(f), store_size));
    Manifest m;
    m.dataset = "bench";
    m.split = "train";
    m.class_names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    m.image_size = store_size;
    m.shard_size = 256;
    m.has_captions = true;
    const fs::path dir = scratch / "store_write";
    WriteRate w;
    for (int round = 0; round < 5; ++round) {
      auto start = Clock::now();
      double cpu0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
      StoreWriter writer(dir.string(), m, true);
      for (int64_t i = 0; i < n; ++i) {
        SampleMeta meta;
        meta.label = i % 10;
        meta.caption = "a photo of a tench, a kind of freshwater fish, held by an angler, number " + std::to_string(i);
        meta.source = "n01440764/n01440764_" + std::to_string(10026 + i) + ".JPEG";
        writer.add(fitted[i], meta);
      }
      writer.finish();
      w.rate = best(w.rate, {n / seconds_since(start), n / (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0)});
    }
    w.bytes_per_image = static_cast<double>(dir_bytes(dir)) / n;
    fs::remove_all(dir);
    return w;
  };
  const WriteRate write_rate = writer_rate();
  auto print_write_rate = [&] {
    std::printf(
        "\nstore writer alone (1 thread, %lld pre-decoded %dx%d images + label, caption, source; best of 5):\n"
        "  %8.0f images/s wall, %8.0f images per CPU-second, %.0f bytes per image\n",
        static_cast<long long>(n), store_size, store_size, write_rate.rate.wall, write_rate.rate.cpu,
        write_rate.bytes_per_image);
  };
  if (write_only) {
    print_write_rate();
    fs::remove_all(scratch);
    return 0;
  }

  double convert_rate = write_store(scratch / "store", 0);

  AugmentOptions aug;
  aug.output_size = output;
  std::vector<float> out(3 * output * output);
  std::vector<int64_t> order = [&] {
    std::vector<int64_t> p(n);
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), std::mt19937(1));
    return p;
  }();

  // 1. Per core: JPEG decode per sample (a folder loader) versus store read, then the same
  //    train augmentation to `output` px. Interleaved rounds, best of three each, so load from
  //    other processes hits both alike.
  Store store((scratch / "store").string());
  Rate jpeg_rate, store_rate;
  const double load_before = load_average();
  for (int round = 0; round < 3; ++round) {
    jpeg_rate = best(jpeg_rate, rate(n, seconds, [&](int64_t i) {
                       augment(read_image_rgb(files[order[i]]), aug, 0, order[i], out.data());
                     }));
    cv::Mat image(store_size, store_size, CV_8UC3);
    store_rate = best(store_rate, rate(n, seconds, [&](int64_t i) {
                        store.read_image(order[i], image.data);
                        augment(image, aug, 0, order[i], out.data());
                      }));
  }

  // 1b. Decoding alone: starft's read_image_rgb (libjpeg driven directly, refusing damaged files)
  //     against what it replaced, cv::imread + BGR->RGB. Interleaved, best of three.
  Rate starft_decode, opencv_decode;
  for (int round = 0; round < 3; ++round) {
    starft_decode = best(starft_decode, rate(n, seconds, [&](int64_t i) { read_image_rgb(files[order[i]]); }));
    opencv_decode = best(opencv_decode, rate(n, seconds, [&](int64_t i) {
                           cv::Mat bgr = cv::imread(files[order[i]], cv::IMREAD_COLOR), rgb;
                           cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
                         }));
  }

  // 2. The prefetch loader (one reader thread + W augmentation threads), batches of 64.
  auto loader_rate = [&](int w) {
    SamplerOptions so;
    so.num_samples = n;
    so.batch_size = 64;
    LoaderOptions lo;
    lo.workers = w;
    lo.prefetch_batches = 4;
    lo.augment = aug;
    Loader loader(store, DistributedSampler(so), lo);
    auto start = Clock::now();
    double cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    int64_t done = 0, epoch = 0;
    while (seconds_since(start) < seconds) {
      loader.start(epoch++);
      while (auto b = loader.next()) done += b->images.size(0);
    }
    // cpu: images per CPU-second of all the loader's threads together.
    return Rate{done / seconds_since(start), done / (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0)};
  };
  Rate loader1 = loader_rate(1);
  Rate loaderw = loader_rate(workers);

  // 3. Compression: bytes per image and per-core read(+augment) rates at gzip 1 and 4.
  struct Level {
    int level;
    double bytes_per_image;
    Rate read_rate, pipeline_rate;
  };
  std::vector<Level> levels;
  for (int level : {0, 1, 4}) {
    fs::path dir = scratch / ("store_gzip" + std::to_string(level));
    if (level == 0)
      dir = scratch / "store";
    else
      write_store(dir, level);
    Store s(dir.string());
    cv::Mat image(store_size, store_size, CV_8UC3);
    Rate read = rate(n, seconds, [&](int64_t i) { s.read_image(order[i], image.data); });
    Rate pipe = rate(n, seconds, [&](int64_t i) {
      s.read_image(order[i], image.data);
      augment(image, aug, 0, order[i], out.data());
    });
    levels.push_back({level, static_cast<double>(dir_bytes(dir)) / n, read, pipe});
  }

  std::printf(
      "store_bench: %lld images (%s, mean %.1f KB JPEG), store %dx%d, augment to %d, %u cores, "
      "load average %.1f\n",
      static_cast<long long>(n), jpeg_dir.empty() ? "synthetic 500x375" : jpeg_dir.c_str(), jpeg_bytes / 1024.0 / n,
      store_size, store_size, output, std::thread::hardware_concurrency(), load_before);
  std::printf("(wall: images per second of elapsed time; cpu: per second of CPU time, i.e. on an unshared core)\n");
  std::printf("\nper core (1 thread), read + RandomResizedCrop(%d) + normalise:      wall      cpu\n", output);
  std::printf("  JPEG files, decoded per sample                         %8.0f %8.0f images/s\n", jpeg_rate.wall,
              jpeg_rate.cpu);
  std::printf("  HDF5 store                                             %8.0f %8.0f images/s\n", store_rate.wall,
              store_rate.cpu);
  std::printf("  ratio store / JPEG                                     %8.2f %8.2f x   (target >= 5)\n",
              store_rate.wall / jpeg_rate.wall, store_rate.cpu / jpeg_rate.cpu);
  std::printf("\nJPEG decoding alone, per core:                                       wall      cpu\n");
  std::printf("  starft read_image_rgb (checked, libjpeg)               %8.0f %8.0f images/s\n", starft_decode.wall,
              starft_decode.cpu);
  std::printf("  cv::imread + cvtColor (unchecked, before issue 14)     %8.0f %8.0f images/s\n", opencv_decode.wall,
              opencv_decode.cpu);
  std::printf("\nprefetch loader, one process (1 reader thread + W augmentation threads), batch 64:\n");
  std::printf("  W = 1                          : %8.0f images/s wall, %6.0f images per CPU-second\n", loader1.wall,
              loader1.cpu);
  std::printf("  W = %d                          : %8.0f images/s wall, %6.0f images per CPU-second\n", workers,
              loaderw.wall, loaderw.cpu);
  std::printf(
      "  W = %d on %d unshared cores     : %8.0f images/s (CPU-time bound: cores x images per CPU-second; "
      "target >= 2000)\n",
      workers, workers, workers * loaderw.cpu);
  std::printf("\ncompression of the image chunks (per core, wall / cpu):\n");
  std::printf("  %-6s %12s %20s %24s\n", "gzip", "bytes/image", "read images/s", "read+augment images/s");
  for (const auto& l : levels)
    std::printf("  %-6s %12.0f %9.0f / %8.0f %12.0f / %8.0f\n", l.level == 0 ? "none" : std::to_string(l.level).c_str(),
                l.bytes_per_image, l.read_rate.wall, l.read_rate.cpu, l.pipeline_rate.wall, l.pipeline_rate.cpu);
  std::printf("  ImageNet-1k train (1,281,167 images) at this size, uncompressed: %.1f GB\n",
              levels[0].bytes_per_image * 1281167 / 1e9);
  std::printf("\nconversion (1 thread, decode + fit + write): %.0f images/s wall\n", convert_rate);
  print_write_rate();
  fs::remove_all(scratch);
  return 0;
}
