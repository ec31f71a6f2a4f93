// Models under the RAM budget: host objects that report their weights (ComfyUI's ModelPatcher,
// CLIP, VAE through bridge/) count under the budget and, least recently used first, leave RAM in
// one of two ways:
//
// - dropped: a model whose value carries a recipe is replaced by that recipe, and a run's INPUT
//   port rebuilds it when it next reads it (engine/recipes.h). Chosen when the rebuild (timed when
//   the recipe ran) is cheaper than writing the model's new bytes, and only when dropping really
//   frees it (the host checks that no one else holds it);
// - written: its CPU weights are written once to a safetensors file in the context's folder and
//   swapped, in place, for tensors mapping that file. The Python object, its class and its patches
//   stay what they were; whoever holds it (ComfyUI's caches, a LoRA clone) keeps using it, and the
//   kernel faults the pages back when it is used. A later spill of weights still mapped from an
//   earlier one writes nothing: it only gives their pages back (madvise MADV_PAGEOUT, which never
//   loses data: a page changed in place stays).
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <tuple>

#include <spdlog/spdlog.h>

#include "storage/context_state.h"
#include "storage/safetensors.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4; older kernels refuse it (EINVAL) and the pages stay
#endif

namespace discomfort::storage::detail {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t TensorBytes(const at::Tensor& tensor) {
  return static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
}

// Gives the pages of file-backed tensors back to the kernel. The range is widened to whole pages:
// a mapping starts on a page boundary, so the widened range stays inside the same mapping, whose
// neighbouring bytes belong to the same model's file.
void PageOut(const std::vector<at::Tensor>& tensors) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (const at::Tensor& tensor : tensors) {
    const uint64_t bytes = TensorBytes(tensor);
    if (bytes == 0) continue;
    const auto begin = reinterpret_cast<uintptr_t>(tensor.data_ptr());
    const uintptr_t first = begin / page * page;
    const uintptr_t last = (begin + bytes + page - 1) / page * page;
    ::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);  // a hint
  }
}

// The weights to write, each distinct view once: tied weights (two names, one tensor) stay tied.
struct WritePlan {
  NamedTensors unique;                              // written under the first name
  std::vector<std::pair<std::string, size_t>> all;  // name -> index into `unique`
  uint64_t bytes = 0;
};

WritePlan PlanWrite(const NamedTensors& tensors) {
  using ViewKey = std::tuple<const void*, std::vector<int64_t>, std::vector<int64_t>, int>;
  std::map<ViewKey, size_t> seen;
  WritePlan plan;
  for (const auto& [name, tensor] : tensors) {
    ViewKey key{tensor.data_ptr(), tensor.sizes().vec(), tensor.strides().vec(),
                static_cast<int>(tensor.scalar_type())};
    auto [it, fresh] = seen.emplace(key, plan.unique.size());
    if (fresh) {
      plan.unique.emplace_back(name, tensor);
      plan.bytes += TensorBytes(tensor);
    }
    plan.all.emplace_back(name, it->second);
  }
  return plan;
}

void ReleaseFreedMemory() {
#if defined(__GLIBC__)
  // The weights freed were many allocations below glibc's mmap threshold; without a trim the
  // heap keeps their pages and the process's RSS does not fall.
  ::malloc_trim(0);
#endif
}

}  // namespace

bool ContextState::ModelCanLeave(const Entry& entry,
                                 const std::set<HostPartKey>& pinned_parts) const {
  bool resident = false;
  for (const HostMemoryPart& part : entry.parts) {
    const HostPartKey key{part.id, part.device};
    if (pinned_parts.count(key) > 0) return false;  // a pinned entry uses the same weights
    if (!part.spillable || part.device != "cpu") continue;
    auto it = host_parts.find(key);
    if (it != host_parts.end() && it->second.resident) resident = true;
  }
  return resident;
}

std::set<HostPartKey> ContextState::PinnedParts() const {
  std::set<HostPartKey> pinned;
  for (const auto& [_, entry] : entries) {
    if (entry.pins == 0 || entry.kind != ValueKind::kHostObject) continue;
    for (const HostMemoryPart& part : entry.parts) pinned.insert({part.id, part.device});
  }
  return pinned;
}

void ContextState::BeginModelSpill(const std::string& key, Entry& victim, ModelSpillJob* job) {
  victim.where = Residence::kSpilling;
  job->key = key;
  job->version = victim.version;
  job->value = victim.value;
  job->mapped_data = victim.mapped_data;
  job->path = temp_dir + "/model-" + std::to_string(victim.version) + "-" +
              std::to_string(++spill_files) + ".safetensors";
  job->write_bytes_per_second = write_bytes_per_second;
  job->freed_estimate = 0;
  for (const HostMemoryPart& part : victim.parts) {
    auto it = host_parts.find({part.id, part.device});
    if (part.spillable && part.device == "cpu" && it != host_parts.end() && it->second.resident) {
      job->freed_estimate += part.bytes;
    }
  }
  ram_spilling += job->freed_estimate;
}

uint64_t ContextState::RestoreModelParts(Entry& entry) {
  uint64_t restored = 0;
  for (const HostMemoryPart& part : entry.parts) {
    auto it = host_parts.find({part.id, part.device});
    if (it == host_parts.end() || it->second.resident || part.device != "cpu") continue;
    it->second.resident = true;
    host_spilled_bytes -= it->second.bytes;
    ram_bytes += it->second.bytes;
    host_ram_bytes += it->second.bytes;
    restored += it->second.bytes;
  }
  if (restored > 0) ++model_restores;
  return restored;
}

Status ContextState::FinishModelSpill(ModelSpillJob& job) {
  const auto started = Clock::now();
  const std::shared_ptr<HostObject> host = job.value.host();
  nlohmann::json event = {{"event", "model_spill"}, {"key", job.key}};
  ErrorLocation where;
  where.port = job.key;

  // Ends the job without a spill: the entry is back to kMemory, its blocks still counted.
  auto abandon = [&](const Status& error) {
    {
      MutexLock lock(mu);
      ram_spilling -= job.freed_estimate;
      auto it = entries.find(job.key);
      if (it != entries.end() && it->second.version == job.version &&
          it->second.where == Residence::kSpilling) {
        it->second.where = Residence::kMemory;
      }
    }
    spdlog::warn("[discomfort] model '{}' stays in RAM: {}", job.key, error.ToString());
    return Status(error.code(), "model '" + job.key + "' stays in RAM: " + error.message(), where);
  };

  auto weights = host->TensorsToSpill();
  if (!weights.ok()) return abandon(weights.status());
  NamedTensors to_write;
  std::vector<at::Tensor> kept;  // already file-backed by an earlier spill
  uint64_t total_bytes = 0;
  for (auto& [name, tensor] : *weights) {
    if (!tensor.defined() || !tensor.is_cpu() || !tensor.has_storage()) continue;
    total_bytes += TensorBytes(tensor);
    if (job.mapped_data.count(tensor.data_ptr()) > 0) {
      kept.push_back(tensor);
    } else {
      to_write.emplace_back(name, tensor);
    }
  }
  weights->clear();
  WritePlan plan = PlanWrite(to_write);
  const double bandwidth = job.write_bytes_per_second > 0 ? job.write_bytes_per_second
                                                          : options.assumed_write_bytes_per_second;
  const double write_estimate = static_cast<double>(plan.bytes) / bandwidth;
  const double rebuild = job.value.rebuild_seconds();
  event["bytes"] = total_bytes;
  event["write_seconds_estimate"] = write_estimate;
  event["rebuild_seconds"] = rebuild >= 0 ? nlohmann::json(rebuild) : nlohmann::json(nullptr);

  bool drop = false;
  std::string reason;
  if (!job.value.has_recipe()) {
    reason = "no recipe: its weights are written";
  } else if (options.model_spill == ModelSpill::kWrite) {
    reason = "model spill mode 'write'";
  } else if (options.model_spill == ModelSpill::kDrop) {
    drop = true;
    reason = "model spill mode 'drop'";
  } else if (rebuild < 0) {
    reason = "the recipe's rebuild time is unknown";
  } else if (plan.bytes == 0) {
    reason = "its weights are already on disk";
  } else {
    drop = rebuild < write_estimate;
    reason = std::string("rebuilding takes ") + std::to_string(rebuild) + " s, writing about " +
             std::to_string(write_estimate) + " s";
  }
  if (drop) {
    to_write.clear();
    kept.clear();
    plan = WritePlan();
    const std::string held = host->ReleaseForDrop(job.key);
    if (!held.empty()) {
      drop = false;
      reason += "; not dropped, " + held;
      auto again = host->TensorsToSpill();  // the plan was released: gather the weights again
      if (!again.ok()) return abandon(again.status());
      for (auto& [name, tensor] : *again) {
        if (!tensor.defined() || !tensor.is_cpu() || !tensor.has_storage()) continue;
        if (job.mapped_data.count(tensor.data_ptr()) > 0) {
          kept.push_back(tensor);
        } else {
          to_write.emplace_back(name, tensor);
        }
      }
      plan = PlanWrite(to_write);
    }
  }
  event["reason"] = reason;

  if (drop) {
    Value old;
    std::vector<at::Tensor> old_mapped;
    std::vector<std::string> files;
    bool committed = false;
    {
      MutexLock lock(mu);
      ram_spilling -= job.freed_estimate;
      auto it = entries.find(job.key);
      if (it != entries.end() && it->second.version == job.version &&
          it->second.where == Residence::kSpilling && it->second.pins == 0) {
        Entry& entry = it->second;
        RemoveResident(entry);
        files = std::move(entry.model_files);
        disk_bytes -= entry.model_file_bytes;
        old = std::move(entry.value);
        old_mapped = std::move(entry.mapped);
        entry.value = Value::Recipe(old.recipe(), old.rebuild_seconds());
        entry.kind = ValueKind::kRecipe;
        entry.bytes = entry.value.ApproxBytes();
        entry.parts.clear();
        entry.model = false;
        entry.mapped_data.clear();
        entry.model_files.clear();
        entry.model_file_bytes = 0;
        entry.where = Residence::kMemory;
        AddResident(entry);
        ++model_drops;
        committed = true;
      } else if (it != entries.end() && it->second.version == job.version &&
                 it->second.where == Residence::kSpilling) {
        it->second.where = Residence::kMemory;  // pinned meanwhile
      }
    }
    for (const std::string& file : files) fs->RemoveFile(file).IgnoreError();
    old = Value();  // the object goes here, outside the lock
    old_mapped.clear();
    ReleaseFreedMemory();
    if (committed) {
      event["action"] = "drop";
      event["written_bytes"] = 0;
      event["seconds"] = SecondsSince(started);
      Observe("drop", job.key, total_bytes, started);
      EmitEvent(event);
    }
    return Status::Ok();
  }

  // Written: the new weights to a file, swapped for tensors mapping it.
  std::vector<at::Tensor> mapped_now;
  uint64_t file_bytes = 0;
  double write_seconds = 0;
  bool wrote = false;
  if (!plan.unique.empty()) {
    {
      MutexLock lock(mu);
      Status ready = EnsureTempDir();
      if (!ready.ok()) {
        lock.Unlock();
        return abandon(ready);
      }
    }
    SafetensorsWriteOptions write_options;
    write_options.sync = options.sync_spill_files;
    write_options.chunk_bytes = options.io_chunk_bytes;
    write_options.metadata = {{"discomfort.key", job.key}, {"discomfort.model", host->TypeName()}};
    const auto write_started = Clock::now();
    Status written = WriteSafetensors(*fs, job.path, plan.unique, write_options);
    write_seconds = SecondsSince(write_started);
    Result<SafetensorsContents> contents = Status(ErrorCode::kInternal, "not read");
    if (written.ok()) {
      auto size = fs->FileSize(job.path);
      if (size.ok()) {
        file_bytes = *size;
        contents = ReadSafetensors(*fs, job.path);  // mapped
        if (!contents.ok()) written = contents.status();
      } else {
        written = size.TakeStatus();
      }
    }
    if (written.ok() && contents->tensors.size() != plan.unique.size()) {
      written = Status(ErrorCode::kInternal, "the model's spill file lost weights");
    }
    NamedTensors replacements;
    if (written.ok()) {
      std::map<std::string, at::Tensor> by_name(contents->tensors.begin(), contents->tensors.end());
      for (const auto& [name, index] : plan.all) {
        at::Tensor tensor = by_name[plan.unique[index].first];
        replacements.emplace_back(name, tensor);
        mapped_now.push_back(tensor);
      }
      written = host->ReplaceTensors(replacements);
    }
    if (!written.ok()) {
      fs->RemoveFile(job.path).IgnoreError();
      return abandon(written);
    }
    wrote = true;
    Observe("spill", job.key, plan.bytes, write_started);
  }
  PageOut(kept);
  const uint64_t written_bytes = plan.bytes;
  to_write.clear();
  plan = WritePlan();  // the old weights go here (unless someone else holds them)
  ReleaseFreedMemory();

  bool remove_file = false;
  {
    MutexLock lock(mu);
    ram_spilling -= job.freed_estimate;
    if (wrote && write_seconds > 0) {
      write_bytes_per_second = static_cast<double>(written_bytes) / write_seconds;
    }
    auto it = entries.find(job.key);
    const bool same = it != entries.end() && it->second.version == job.version &&
                      it->second.where == Residence::kSpilling;
    if (!same) {
      remove_file = wrote;  // replaced or erased meanwhile; the object keeps its mapping
    } else {
      Entry& entry = it->second;
      entry.where = Residence::kMemory;
      if (wrote) {
        entry.model_files.push_back(job.path);
        entry.model_file_bytes += file_bytes;
        disk_bytes += file_bytes;
        for (const at::Tensor& tensor : mapped_now) {
          entry.mapped_data.insert(tensor.data_ptr());
          entry.mapped.push_back(tensor);
        }
      }
      if (entry.pins == 0) {  // pinned meanwhile: file-backed now, but counted in RAM
        for (const HostMemoryPart& part : entry.parts) {
          auto use = host_parts.find({part.id, part.device});
          if (!part.spillable || part.device != "cpu" || use == host_parts.end() ||
              !use->second.resident) {
            continue;
          }
          use->second.resident = false;
          ram_bytes -= use->second.bytes;
          host_ram_bytes -= use->second.bytes;
          host_spilled_bytes += use->second.bytes;
        }
        ++model_spills;
      }
    }
  }
  if (remove_file) fs->RemoveFile(job.path).IgnoreError();
  event["action"] = wrote ? "write" : "page_out";
  event["written_bytes"] = written_bytes;
  event["seconds"] = SecondsSince(started);
  if (wrote) event["write_seconds"] = write_seconds;
  EmitEvent(event);
  return Status::Ok();
}

void ContextState::Remeasure(const std::string& key, uint64_t version) {
  Entry measured;
  {
    MutexLock lock(mu);
    auto it = entries.find(key);
    if (it == entries.end() || it->second.version != version || it->second.pins > 0 ||
        it->second.kind != ValueKind::kHostObject) {
      return;
    }
    measured.value = it->second.value;
  }
  MeasureHost(measured);  // outside the lock: it may take the GIL
  {
    MutexLock lock(mu);
    auto it = entries.find(key);
    if (it == entries.end() || it->second.version != version || it->second.pins > 0 ||
        it->second.where != Residence::kMemory || it->second.kind != ValueKind::kHostObject) {
      return;
    }
    Entry& entry = it->second;
    RemoveResident(entry);
    entry.parts = std::move(measured.parts);
    entry.bytes = measured.bytes;
    AddResident(entry);
  }
  measured.value = Value();
}

}  // namespace discomfort::storage::detail
