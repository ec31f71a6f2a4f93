// The API-format prompt ComfyUI executes ({node_id: {class_type, inputs, _meta}}) and the
// DiscomfortPort interface of a workflow: discovery and the rewrite that turns INPUT ports into
// context loaders and OUTPUT ports into context savers (DESIGN.md decision 4).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::graph {

inline constexpr const char* kPortClass = "DiscomfortPort";
inline constexpr const char* kLoaderClass = "DiscomfortContextLoader";
inline constexpr const char* kSaverClass = "DiscomfortContextSaver";

// A link in an API prompt: an input value of the form ["<node id>", <output slot>].
struct LinkRef {
  std::string node_id;
  int slot = 0;
};

// True when `value` has the shape of a link ([string, integer]).
bool IsLink(const nlohmann::json& value);
std::optional<LinkRef> AsLink(const nlohmann::json& value);
// The same without copying the node id (for loops over whole prompts); points into `value`.
struct LinkView {
  const std::string* node_id = nullptr;
  int slot = 0;
};
std::optional<LinkView> AsLinkView(const nlohmann::json& value);
nlohmann::json MakeLink(LinkRef link);

// Checks the structure of an API prompt: an object of node objects, each with a string
// `class_type` and an object `inputs`, every link pointing at an existing node.
Status ValidateApiPrompt(const nlohmann::json& prompt);

// Parses `text` as an API prompt; accepts the bare prompt or {"prompt": {...}} (a /prompt body).
Result<nlohmann::json> ParseApiPrompt(const std::string& text, const std::string& source_name);

enum class PortMode { kInput, kOutput, kPassthru, kUnconnected };
const char* PortModeName(PortMode mode);

struct PortConsumer {
  std::string node_id;
  std::string input_name;
};

struct Port {
  std::string unique_id;
  std::string node_id;
  PortMode mode = PortMode::kUnconnected;
  std::vector<std::string> tags;
  // Inferred from what the port connects to ("*" when unknown).
  std::string type = "*";
  std::optional<LinkRef> source;        // what feeds input_data (OUTPUT, PASSTHRU)
  std::vector<PortConsumer> consumers;  // who reads output_data (INPUT, PASSTHRU)
};

struct PortSet {
  std::vector<Port> inputs;
  std::vector<Port> outputs;
  std::vector<Port> passthrus;
  std::vector<Port> unconnected;

  const Port* FindInput(const std::string& unique_id) const;
  const Port* FindOutput(const std::string& unique_id) const;
  nlohmann::json ToJson() const;
};

// A port's `tags` widget ("a, b,c") as a list: split at commas, each tag trimmed of ASCII
// whitespace (as Python's str.strip() trims it), empty tags dropped. UI and API discovery both
// read tags through this.
std::vector<std::string> SplitPortTags(std::string_view text);
// A unique_id names a port when something other than whitespace is left after that trim.
bool IsUsablePortUniqueId(std::string_view unique_id);

// Port bookkeeping shared by DiscoverPorts (API prompts) and DiscoverUiPorts (UI workflows).
// A port fed and read is PASSTHRU, only read INPUT, only fed OUTPUT, neither UNCONNECTED.
PortMode ClassifyPort(bool has_source, bool has_consumers);
struct PortOwners {
  std::map<std::string, std::string> inputs, outputs;  // unique_id -> first node id
};
// Files `port` under its mode. With `strict`, a unique_id already held by another INPUT (or
// OUTPUT) port is a kAlreadyExists error naming both nodes (`workflow` names the file).
Status AddPort(Port port, PortSet* set, PortOwners* owners, bool strict = true,
               const std::string& workflow = {});

// Finds every DiscomfortPort. `object_info` (the /object_info dictionary, may be null) lets
// the port types be inferred from the sockets they connect to. Missing unique_id, or the same
// unique_id on two INPUT ports or on two OUTPUT ports, is an error naming both nodes.
Result<PortSet> DiscoverPorts(const nlohmann::json& prompt,
                              const nlohmann::json* object_info = nullptr);
// The same for a prompt that already passed ValidateApiPrompt's checks (validation skips a
// second walk of every node and link).
Result<PortSet> DiscoverPortsOfCheckedPrompt(const nlohmann::json& prompt,
                                             const nlohmann::json* object_info);

// Rewrites the ports of `prompt` for execution: INPUT → DiscomfortContextLoader,
// OUTPUT → DiscomfortContextSaver, PASSTHRU → consumers linked straight to its source,
// unconnected ports removed.
Result<nlohmann::json> RewritePortsForExecution(const nlohmann::json& prompt, const PortSet& ports);

}  // namespace discomfort::graph
