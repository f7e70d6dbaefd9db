#include "kfc/pipeline/phases.h"

#include "kfc/core/parallel.h"
#include "kfc/kron/blas_threads.h"
#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Status Timed(const std::function<Status()>& phase, const std::function<void(double)>& log) {
  const Clock::time_point start = Clock::now();
  KFC_RETURN_IF_ERROR(phase());
  log(SecondsSince(start));
  return Status::Ok();
}

Status RunParallel(const Options& o, size_t n, const std::function<Status(size_t)>& fn) {
  kron::ScopedBlasThreads blas(1);
  return ParallelFor(static_cast<int64_t>(n), ResolveThreads(o.threads),
                     [&](int64_t i) { return fn(static_cast<size_t>(i)); });
}

ProgressMeter::ProgressMeter(const Options& o, std::string phase,
                             const std::vector<const match::LayerCandidate*>& layers)
    : callback_(o.progress), start_(Clock::now()) {
  p_.phase = std::move(phase);
  p_.layers_total = static_cast<int64_t>(layers.size());
  for (const auto* c : layers) {
    bytes_.push_back(static_cast<double>(c->k) * static_cast<double>(c->n) *
                     static_cast<double>(tensor::DTypeSize(c->dtype)));
    p_.bytes_total += bytes_.back();
  }
  Report();
}

void ProgressMeter::Done(size_t i) {
  if (!callback_) return;
  std::lock_guard<std::mutex> lock(mu_);
  ++p_.layers_done;
  p_.bytes_done += bytes_[i];
  if (p_.layers_done < p_.layers_total) Report();
}

void ProgressMeter::Finish() {
  if (!callback_) return;
  p_.layers_done = p_.layers_total;
  p_.bytes_done = p_.bytes_total;
  Report();
}

void ProgressMeter::Report() {
  if (!callback_) return;
  p_.elapsed_s = SecondsSince(start_);
  callback_(p_);
}

std::vector<size_t> ConsideredLayers(const std::vector<LayerState>& states) {
  std::vector<size_t> out;
  for (size_t i = 0; i < states.size(); ++i) {
    if (states[i].considered) out.push_back(i);
  }
  return out;
}

std::vector<const match::LayerCandidate*> CandidatesAt(const std::vector<LayerState>& states,
                                                       const std::vector<size_t>& indices) {
  std::vector<const match::LayerCandidate*> out;
  for (size_t i : indices) out.push_back(states[i].c);
  return out;
}

}  // namespace kfc::pipeline
