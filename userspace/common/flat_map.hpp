// An open-addressing hash map from uint64_t keys to values, stored in one
// array: no allocation per entry, so a socket's assign and release cost no
// malloc and no free (std::unordered_map allocates a node for each).
// Linear probing, at most 7/8 full; an erase shifts the entries after it
// back (no tombstones), so a lookup never walks past a deleted slot.
// Iterators and pointers are invalidated by any insert or erase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace portghost {

template <typename V>
class FlatMap {
  struct Slot {
    uint64_t key = 0;
    bool used = false;
    V value{};
  };

 public:
  // The value of key, default-constructed when new; second: it is new.
  std::pair<V*, bool> try_emplace(uint64_t key) {
    if ((size_ + 1) * 8 > slots_.size() * 7) grow();
    size_t i = home(key);
    while (slots_[i].used) {
      if (slots_[i].key == key) return {&slots_[i].value, false};
      i = (i + 1) & mask_;
    }
    slots_[i].used = true;
    slots_[i].key = key;  // a free slot's value is always V{}
    size_++;
    return {&slots_[i].value, true};
  }

  V& operator[](uint64_t key) { return *try_emplace(key).first; }

  V* find(uint64_t key) { return const_cast<V*>(std::as_const(*this).find(key)); }
  const V* find(uint64_t key) const {
    if (size_ == 0) return nullptr;
    for (size_t i = home(key); slots_[i].used; i = (i + 1) & mask_)
      if (slots_[i].key == key) return &slots_[i].value;
    return nullptr;
  }

  bool erase(uint64_t key) {
    if (size_ == 0) return false;
    size_t i = home(key);
    while (slots_[i].key != key || !slots_[i].used) {
      if (!slots_[i].used) return false;
      i = (i + 1) & mask_;
    }
    // shift back each later entry of the run that may move into the hole
    // (one whose home is not between the hole and itself, cyclically)
    for (size_t j = (i + 1) & mask_; slots_[j].used; j = (j + 1) & mask_) {
      size_t h = home(slots_[j].key);
      if (((j - h) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = std::move(slots_[j]);
        i = j;
      }
    }
    slots_[i].used = false;
    slots_[i].value = V{};
    size_--;
    return true;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Calls f(key, value) for every entry, in no particular order.
  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.used) f(s.key, s.value);
  }
  // Any one key other than `but` (for an eviction); false when none.
  bool any_key_but(uint64_t but, uint64_t& out) const {
    for (const Slot& s : slots_)
      if (s.used && s.key != but) {
        out = s.key;
        return true;
      }
    return false;
  }

 private:
  size_t home(uint64_t key) const {
    // Fibonacci hashing: cookies are consecutive, so take the high bits
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    size_t n = old.empty() ? 64 : old.size() * 2;
    slots_.assign(n, Slot{});
    mask_ = n - 1;
    shift_ = 64 - __builtin_ctzll(n);
    size_ = 0;
    for (Slot& s : old)
      if (s.used) {
        size_t i = home(s.key);
        while (slots_[i].used) i = (i + 1) & mask_;
        slots_[i] = std::move(s);
        size_++;
      }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace portghost
