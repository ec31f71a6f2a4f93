// Node definitions in the shape ComfyUI's /object_info serves, reduced to what UI→API conversion
// needs: the widget list of each node in the order the frontend creates widgets (which is the order
// of a node's positional `widgets_values`), input and output types.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::graph {

// One input of a node definition (required or optional; `hidden` inputs are not listed).
struct InputSpec {
  std::string name;
  std::string type;  // "COMBO" for option lists (V1 `[[...], {...}]` and V3 `["COMBO", {...}]`)
  nlohmann::json options = nlohmann::json::object();  // the spec's second element
  nlohmann::json combo_values = nlohmann::json::array();
  bool required = false;
  bool is_widget = false;    // a widget type and not forceInput
  bool force_input = false;  // socket only
};

// One widget as the frontend creates it, including the extra widgets inserted after it.
struct WidgetSpec {
  std::string name;
  std::string type;  // INT, FLOAT, STRING, BOOLEAN, COMBO, IMAGEUPLOAD, ...
  nlohmann::json options = nlohmann::json::object();
  nlohmann::json default_value;  // value when widgets_values does not supply one
  // Extra positional slots after the value: 1 for a control_after_generate combo (INT/FLOAT),
  // 2 for a combo's control + control_filter_list.
  int control_slots = 0;
  bool to_prompt = true;         // false for frontend-only widgets (the upload button)
  bool dynamic_prompts = false;  // STRING with `dynamicPrompts: true`: {a|b} choices at queue time
  // V3 DynamicCombo: per option key, the widgets that option adds right after this one, named
  // "<combo>.<input>" (the backend's finalize_prefix names).
  std::vector<std::pair<std::string, std::vector<WidgetSpec>>> dynamic_options;
  bool IsNumeric() const {
    return type == std::string_view("INT") || type == std::string_view("FLOAT");
  }
};

struct NodeDef {
  std::string name;
  std::string display_name;
  std::vector<InputSpec> inputs;    // all inputs in widget order (input_order, then the rest)
  std::vector<WidgetSpec> widgets;  // widgets in creation order (= widgets_values order)
  // Most widgets a node can show at once (dynamic combo options included).
  size_t max_widgets = 0;
  std::vector<std::string> output_types;
  std::vector<std::string> output_names;
  bool output_node = false;
  // Frontends before 1.16 saved a widgets_values slot for each forceInput input too (two for a
  // seed-like one): per saved slot, whether it belongs to a forceInput input. Empty when no
  // input is forceInput. Computed once here instead of per node converted.
  std::vector<bool> legacy_slot_is_forced;
  bool save_node = false;  // IsSaveNodeType(name): its filename_prefix is templated at queue time

  const InputSpec* FindInput(const std::string& input_name) const;
  const WidgetSpec* FindWidget(const std::string& widget_name) const;
  // Definition type of an input, "" when the definition has no such input.
  const std::string& InputType(const std::string& input_name) const;
  // Type of output `slot`, "" when there is no such output.
  const std::string& OutputType(int slot) const;
};

// True for the types the frontend draws as widgets (not sockets).
bool IsWidgetType(const std::string& type);

class NodeDefinitions {
 public:
  NodeDefinitions() = default;

  // `object_info` is the dictionary {class_type: definition}. Malformed entries are an error naming
  // the class.
  static Result<NodeDefinitions> FromJson(nlohmann::json object_info);
  static Result<NodeDefinitions> LoadFile(const std::string& path);

  const NodeDef* Find(const std::string& class_type) const;
  bool Has(const std::string& class_type) const { return Find(class_type) != nullptr; }
  size_t size() const { return defs_.size(); }
  // The dictionary as given (for DiscoverPorts' object_info parameter).
  const nlohmann::json& raw() const { return raw_; }

  // Builds one definition; exposed for tests.
  static Result<NodeDef> BuildDef(const std::string& class_type, const nlohmann::json& entry);

 private:
  nlohmann::json raw_ = nlohmann::json::object();
  // Hashed: looked up for every node and link of every conversion and validation.
  std::unordered_map<std::string, NodeDef> defs_;
};

// The /object_info dictionary behind `defs`, or null (DiscoverPorts' optional parameter).
inline const nlohmann::json* ObjectInfoOf(const NodeDefinitions* defs) {
  return defs != nullptr ? &defs->raw() : nullptr;
}

}  // namespace discomfort::graph
