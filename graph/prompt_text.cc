#include "graph/prompt_text.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <vector>

namespace discomfort::graph {

using nlohmann::json;

std::string StripPromptComments(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (text[i] == '/' && i + 1 < n && text[i + 1] == '*') {
      const size_t end = text.find("*/", i + 2);
      if (end != std::string::npos) {
        i = end + 2;
        continue;
      }
      // An unclosed block comment is no match; `//` cannot start here either.
    } else if (text[i] == '/' && i + 1 < n && text[i + 1] == '/') {
      // JavaScript's `.` stops at line terminators.
      while (i < n && text[i] != '\n' && text[i] != '\r') ++i;
      continue;
    }
    out += text[i++];
  }
  return out;
}

std::string ProcessDynamicPrompt(const std::string& text,
                                 const std::function<size_t(size_t)>& choose) {
  const std::string input = StripPromptComments(text);
  struct Frame {
    std::vector<std::string> options;
    std::string current;
  };
  std::vector<Frame> stack;
  std::string out;
  auto current = [&]() -> std::string& { return stack.empty() ? out : stack.back().current; };
  for (size_t i = 0; i < input.size(); ++i) {
    const char c = input[i];
    if (c == '\\' && i + 1 < input.size()) {
      // Escapes stay through the choice pass and are resolved at the end.
      current() += c;
      current() += input[++i];
    } else if (c == '{') {
      stack.emplace_back();
    } else if (c == '|' && !stack.empty()) {
      stack.back().options.push_back(std::move(stack.back().current));
      stack.back().current.clear();
    } else if (c == '}' && !stack.empty()) {
      Frame frame = std::move(stack.back());
      stack.pop_back();
      frame.options.push_back(std::move(frame.current));
      const size_t pick = choose(frame.options.size()) % frame.options.size();
      current() += frame.options[pick];
    } else {
      current() += c;
    }
  }
  // Unclosed blocks are text.
  while (!stack.empty()) {
    Frame frame = std::move(stack.back());
    stack.pop_back();
    std::string literal = "{";
    for (const std::string& option : frame.options) literal += option + "|";
    literal += frame.current;
    current() += literal;
  }
  std::string result;
  result.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\\' && i + 1 < out.size() &&
        (out[i + 1] == '{' || out[i + 1] == '}' || out[i + 1] == '|')) {
      continue;  // drop the backslash, keep the character
    }
    result += out[i];
  }
  return result;
}

namespace {

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

SeededChooser::SeededChooser(uint64_t seed, const std::string& key) {
  // FNV-1a of the key, mixed with the seed: choices of one widget do not depend on other nodes.
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  state_ = seed ^ h;
  SplitMix(state_);
}

size_t SeededChooser::operator()(size_t n) {
  if (n == 0) return 0;
  return static_cast<size_t>(SplitMix(state_) % n);
}

std::string FormatTemplateDate(const std::string& format, const std::tm& time) {
  std::string out;
  const size_t n = format.size();
  auto run = [&](size_t i, char c, size_t max) {
    size_t k = 0;
    while (i + k < n && format[i + k] == c && k < max) ++k;
    return k;
  };
  auto pad = [](int value, size_t width) {
    std::string s = std::to_string(value);
    while (s.size() < width) s.insert(s.begin(), '0');
    return s;
  };
  size_t i = 0;
  while (i < n) {
    const char c = format[i];
    size_t k = 0;
    int value = 0;
    switch (c) {
      case 'd':
        k = run(i, c, 2), value = time.tm_mday;
        break;
      case 'M':
        k = run(i, c, 2), value = time.tm_mon + 1;
        break;
      case 'h':
        k = run(i, c, 2), value = time.tm_hour;
        break;
      case 'm':
        k = run(i, c, 2), value = time.tm_min;
        break;
      case 's':
        k = run(i, c, 2), value = time.tm_sec;
        break;
      case 'y': {
        // /yyy?y?/: yy or yyyy (the frontend has no rule for "yyy": it is left as text here).
        const size_t ys = run(i, c, 4);
        const std::string year = std::to_string(time.tm_year + 1900);
        if (ys == 4) {
          out += year;
        } else if (ys == 2) {
          out += year.size() > 2 ? year.substr(2) : year;
        } else {
          out.append(ys, 'y');
        }
        i += ys;
        continue;
      }
      default:
        break;
    }
    if (k == 0) {
      out += c;
      ++i;
      continue;
    }
    out += pad(value, k);
    i += k;
  }
  return out;
}

std::string JsString(const json& value) {
  if (value.is_null()) return "";  // `(widget.value ?? '') + ''`
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 1e21) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.0f", d);
      return buf;
    }
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  }
  return value.dump();
}

std::string ApplyTextReplacements(const std::string& value, const WidgetLookup& lookup,
                                  const std::tm& now) {
  std::string out;
  size_t i = 0;
  while (i < value.size()) {
    const size_t open = value.find('%', i);
    if (open == std::string::npos) break;
    const size_t close = value.find('%', open + 1);
    if (close == std::string::npos) break;
    out.append(value, i, open - i);
    if (close == open + 1) {  // "%%": /%([^%]+)%/ needs one character; retry at the second '%'
      out += '%';
      i = open + 1;
      continue;
    }
    const std::string text = value.substr(open + 1, close - open - 1);
    const std::string match = value.substr(open, close - open + 1);
    i = close + 1;
    std::vector<std::string> split;
    for (size_t start = 0;;) {
      const size_t dot = text.find('.', start);
      split.push_back(
          text.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    if (split.size() != 2) {
      if (split[0].rfind("date:", 0) == 0) {
        out += FormatTemplateDate(split[0].substr(5), now);
      } else {
        out += match;
      }
      continue;
    }
    std::optional<json> widget = lookup ? lookup(split[0], split[1]) : std::nullopt;
    if (!widget) {
      out += match;
      continue;
    }
    std::string text_value = JsString(*widget);
    for (char& c : text_value) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f || c == '/' || c == '?' || c == '<' || c == '>' || c == '\\' ||
          c == ':' || c == '*' || c == '|' || c == '"') {
        c = '_';
      }
    }
    out += text_value;
  }
  out.append(value, i, std::string::npos);
  return out;
}

bool IsSaveNodeType(const std::string& type) {
  static const std::set<std::string> kTypes = {
      "SaveImage", "SaveImageAdvanced", "SaveSVGNode",  "SaveVideo",     "SaveAnimatedWEBP",
      "SaveWEBM",  "SaveAudio",         "SaveAudioMP3", "SaveAudioOpus", "SaveAudioAdvanced",
      "SaveGLB",   "SaveAnimatedPNG",   "CLIPSave",     "VAESave",       "ModelSave",
      "LoraSave",  "SaveLatent"};
  return kTypes.count(type) > 0;
}

}  // namespace discomfort::graph
