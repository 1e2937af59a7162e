#pragma once
// Prefetching batch loader. One reader thread per process does every HDF5 read (HDF5 is not
// thread-safe) and feeds uint8 images to `workers` augmentation threads through a bounded
// queue; augmented rows are written straight into the batch tensors. Batches come out in
// order, and their content depends only on (store, sampler, augmentation options, epoch),
// never on the number of workers.
//
//   Loader loader(store, sampler, options);
//   loader.start(epoch);                       // or loader.start(saved_state) to resume
//   while (auto batch = loader.next()) { ... } // nullopt at the end of the epoch
//   SamplerState position = loader.state();    // save with a checkpoint
#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/sampler.h"
#include "data/store.h"

namespace starft::data {

struct LoaderOptions {
  int workers = 2;           // augmentation threads (the reader thread is extra)
  int prefetch_batches = 3;  // batches prepared ahead of the consumer
  AugmentOptions augment;
};

struct Batch {
  int64_t epoch = 0;
  int64_t step = 0;
  torch::Tensor images;               // float32 [b, 3, S, S], normalised
  torch::Tensor labels;               // int64 [b]
  torch::Tensor groups;               // int64 [b]; -1 where the store has no groups
  torch::Tensor attributes;           // int64 [b, A], A = manifest().attribute_names.size()
  torch::Tensor indices;              // int64 [b], global sample indices in the store
  std::vector<std::string> captions;  // "" where the store has no captions
};

class Loader {
 public:
  // `store` must outlive the loader.
  Loader(const Store& store, DistributedSampler sampler, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts delivering batches of `epoch` from batch `step` on (stops any epoch in progress).
  void start(int64_t epoch, int64_t step = 0);
  // Resumes at a saved position (checked against this sampler). A state at the end of an
  // epoch resumes at the start of the next one.
  void start(const SamplerState& state);
  // The next batch of the current epoch, or nullopt when the epoch is done. Rethrows an error
  // from the reader or a worker (e.g. a damaged shard).
  std::optional<Batch> next();
  // The position after the last batch returned by next().
  SamplerState state() const;

  const DistributedSampler& sampler() const { return sampler_; }
  int64_t steps_per_epoch() const { return sampler_.steps_per_epoch(); }

 private:
  struct Work {
    int64_t step;
    int64_t index;
    cv::Mat image;
    float* out;
  };
  struct Pending {
    Batch batch;
    int64_t remaining = 0;
  };

  void stop();
  // Buffers are recycled: fresh 38 MB batch tensors and 200 KB images would cost a page fault
  // per 4 KB on first touch (a fifth of the loader's time).
  torch::Tensor batch_images(int64_t rows);  // caller holds mutex_
  cv::Mat image_buffer();                    // caller holds mutex_
  void read_loop();
  void work_loop();
  void set_error(std::exception_ptr e);

  const Store& store_;
  DistributedSampler sampler_;
  LoaderOptions options_;

  std::vector<int64_t> order_;  // this rank's samples for the epoch
  int64_t epoch_ = 0, next_step_ = 0, end_step_ = 0, first_step_ = 0;

  std::mutex mutex_;
  std::condition_variable reader_cv_, worker_cv_, consumer_cv_;
  std::map<int64_t, Pending> pending_;  // batches being built, by step
  std::deque<Work> queue_;
  std::vector<torch::Tensor> image_tensors_;  // batch tensors, reused once nobody else holds them
  std::vector<cv::Mat> free_images_;          // sample buffers returned by the workers
  bool stopping_ = false, reader_done_ = false;
  std::exception_ptr error_;
  std::thread reader_;
  std::vector<std::thread> workers_;
};

}  // namespace starft::data
