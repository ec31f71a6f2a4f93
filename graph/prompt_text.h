// Text transforms the frontend applies to widget values while it builds a prompt (queue time):
// dynamic prompts (src/utils/formatUtil.ts processDynamicPrompt, extensions/core/dynamicPrompts.ts)
// and filename templating (src/utils/searchAndReplace.ts applyTextReplacements, formatDate).
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace discomfort::graph {

// Removes C comments as the frontend's regex /\/\*[\s\S]*?\*\/|\/\/.*/g does: `/* ... */`
// (non-greedy, across lines) and `//` to the end of the line. Like the frontend, this also cuts
// "http://..." text.
std::string StripPromptComments(const std::string& text);

// The frontend's processDynamicPrompt: comments stripped, then every `{a|b|{c|d}}` block replaced
// by one of its options (nested blocks first), then `\{`, `\}`, `\|` unescaped. `choose(n)` picks
// an index in [0, n); the frontend uses Math.random(). An unclosed `{` and a `|` or `}` outside a
// block stay as text.
std::string ProcessDynamicPrompt(const std::string& text,
                                 const std::function<size_t(size_t)>& choose);

// A deterministic chooser: splitmix64 over (seed, key), advanced per choice.
class SeededChooser {
 public:
  SeededChooser(uint64_t seed, const std::string& key);
  size_t operator()(size_t n);

 private:
  uint64_t state_;
};

// The frontend's formatDate: tokens yyyy, yy, MM/M, dd/d, hh/h (0-23), mm/m, ss/s, zero-padded to
// the token's length; other text unchanged.
std::string FormatTemplateDate(const std::string& format, const std::tm& time);

// Widget value lookup for %NodeRef.widget%: the value, or nullopt when no node or widget matches.
using WidgetLookup = std::function<std::optional<nlohmann::json>(const std::string& node,
                                                                 const std::string& widget)>;

// applyTextReplacements: each `%text%` becomes
//   - `%date:FORMAT%` (when text does not split into exactly two parts at '.'; the part before the
//     first '.' is the format, as in the frontend) -> FormatTemplateDate;
//   - `%Node.widget%` -> the widget's value as JavaScript prints it, with / ? < > \ : * | " and
//     control characters replaced by '_';
//   - anything else (unknown node or widget, other patterns) is left as it is.
std::string ApplyTextReplacements(const std::string& value, const WidgetLookup& lookup,
                                  const std::tm& now);

// How JavaScript's String(value) prints a JSON scalar (numbers without a trailing ".0").
std::string JsString(const nlohmann::json& value);

// Node types whose filename_prefix the frontend templates (saveImageExtraOutput.ts).
bool IsSaveNodeType(const std::string& type);

}  // namespace discomfort::graph
