#include "data/loader.h"

#include "common/error.h"

namespace starft::data {

Loader::Loader(const Store& store, DistributedSampler sampler, LoaderOptions options)
    : store_(store), sampler_(std::move(sampler)), options_(options) {
  check(options_.workers >= 1, "loader: workers must be at least 1, got ", options_.workers);
  check(options_.prefetch_batches >= 1, "loader: prefetch_batches must be at least 1, got ", options_.prefetch_batches);
  check(sampler_.options().num_samples == store_.size(), "loader: the sampler covers ", sampler_.options().num_samples,
        " samples but store ", store_.dir(), " holds ", store_.size());
}

Loader::~Loader() { stop(); }

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  reader_cv_.notify_all();
  worker_cv_.notify_all();
  consumer_cv_.notify_all();
  if (reader_.joinable()) reader_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
  pending_.clear();
  queue_.clear();
}

void Loader::start(const SamplerState& state) {
  sampler_.check_resumable(state);
  if (state.step == sampler_.steps_per_epoch()) {
    start(state.epoch + 1, 0);
  } else {
    start(state.epoch, state.step);
  }
}

void Loader::start(int64_t epoch, int64_t step) {
  stop();
  check(step >= 0 && step <= sampler_.steps_per_epoch(), "loader: step ", step, " is outside 0..",
        sampler_.steps_per_epoch());
  order_ = sampler_.indices(epoch);
  epoch_ = epoch;
  first_step_ = next_step_ = step;
  end_step_ = sampler_.steps_per_epoch();
  stopping_ = false;
  reader_done_ = false;
  error_ = nullptr;
  reader_ = std::thread([this] { read_loop(); });
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { work_loop(); });
}

void Loader::set_error(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = e;
    stopping_ = true;
  }
  reader_cv_.notify_all();
  worker_cv_.notify_all();
  consumer_cv_.notify_all();
}

torch::Tensor Loader::batch_images(int64_t rows) {
  const int s = options_.augment.output_size;
  for (auto& t : image_tensors_) {
    // Free when only this list refers to the tensor and its storage (no views elsewhere).
    if (t.use_count() == 1 && t.storage().use_count() == 1 && t.size(0) == rows) return t;
  }
  auto t = torch::empty({rows, 3, s, s}, torch::kFloat32);
  // Keep a few: the batches in flight, the one the consumer holds, and a spare.
  if (image_tensors_.size() < static_cast<size_t>(options_.prefetch_batches) + 2) image_tensors_.push_back(t);
  return t;
}

cv::Mat Loader::image_buffer() {
  if (free_images_.empty()) return cv::Mat(store_.image_size(), store_.image_size(), CV_8UC3);
  cv::Mat m = std::move(free_images_.back());
  free_images_.pop_back();
  return m;
}

void Loader::read_loop() {
  try {
    const int64_t b = sampler_.options().batch_size;
    const int64_t n = static_cast<int64_t>(order_.size());
    const int s = options_.augment.output_size;
    const size_t num_attributes = store_.manifest().attribute_names.size();
    const size_t queue_limit = static_cast<size_t>(options_.workers) * 4;
    const auto& groups = store_.groups();
    for (int64_t step = first_step_; step < end_step_; ++step) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        reader_cv_.wait(lock, [&] { return stopping_ || step < next_step_ + options_.prefetch_batches; });
        if (stopping_) return;
      }
      const int64_t begin = step * b, rows = std::min(b, n - begin);
      Batch batch;
      batch.epoch = epoch_;
      batch.step = step;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        batch.images = batch_images(rows);
      }
      batch.labels = torch::empty({rows}, torch::kInt64);
      batch.groups = torch::full({rows}, -1, torch::kInt64);
      batch.attributes = torch::empty({rows, static_cast<int64_t>(num_attributes)}, torch::kInt64);
      batch.indices = torch::empty({rows}, torch::kInt64);
      batch.captions.resize(rows);
      auto labels = batch.labels.accessor<int64_t, 1>();
      auto group = batch.groups.accessor<int64_t, 1>();
      auto attrs = batch.attributes.accessor<int64_t, 2>();
      auto indices = batch.indices.accessor<int64_t, 1>();
      for (int64_t r = 0; r < rows; ++r) {
        int64_t index = order_[begin + r];
        indices[r] = index;
        labels[r] = store_.labels()[index];
        if (!groups.empty()) group[r] = groups[index];
        for (size_t a = 0; a < num_attributes; ++a)
          attrs[r][a] = store_.attribute(store_.manifest().attribute_names[a])[index];
      }
      float* images = batch.images.data_ptr<float>();
      const int64_t row_floats = 3LL * s * s;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_[step] = Pending{std::move(batch), rows};
      }
      for (int64_t r = 0; r < rows; ++r) {
        int64_t index = order_[begin + r];
        cv::Mat image;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          image = image_buffer();
        }
        store_.read_image(index, image.data);
        std::string caption = store_.caption(index);
        std::unique_lock<std::mutex> lock(mutex_);
        reader_cv_.wait(lock, [&] { return stopping_ || queue_.size() < queue_limit; });
        if (stopping_) return;
        pending_[step].batch.captions[r] = std::move(caption);
        queue_.push_back(Work{step, index, std::move(image), images + r * row_floats});
        lock.unlock();
        worker_cv_.notify_one();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reader_done_ = true;
    }
    worker_cv_.notify_all();
  } catch (...) {
    set_error(std::current_exception());
  }
}

void Loader::work_loop() {
  try {
    while (true) {
      Work work;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        worker_cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || reader_done_; });
        if (stopping_ || queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      reader_cv_.notify_one();  // room in the queue
      augment(work.image, options_.augment, static_cast<uint64_t>(epoch_), work.index, work.out);
      bool complete;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        complete = --pending_[work.step].remaining == 0;
        if (free_images_.size() < static_cast<size_t>(options_.workers) * 4 + 4)
          free_images_.push_back(std::move(work.image));
      }
      if (complete) consumer_cv_.notify_all();
    }
  } catch (...) {
    set_error(std::current_exception());
  }
}

std::optional<Batch> Loader::next() {
  if (next_step_ >= end_step_) return std::nullopt;
  std::unique_lock<std::mutex> lock(mutex_);
  consumer_cv_.wait(lock, [&] {
    if (error_) return true;
    auto it = pending_.find(next_step_);
    return it != pending_.end() && it->second.remaining == 0;
  });
  if (error_) {
    std::exception_ptr e = error_;
    lock.unlock();
    stop();
    std::rethrow_exception(e);
  }
  auto it = pending_.find(next_step_);
  Batch batch = std::move(it->second.batch);
  pending_.erase(it);
  ++next_step_;
  lock.unlock();
  reader_cv_.notify_all();
  return batch;
}

SamplerState Loader::state() const { return sampler_.state(epoch_, next_step_); }

}  // namespace starft::data
