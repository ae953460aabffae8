/* fuzz_kubeconfig.c — libFuzzer target: any bytes as a kubeconfig (YAML parser + resolver) must
 * give KD_OK or a clean error, never a crash, a leak or a hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  const char *texts[] = {text}, *names[] = {"fuzz.yaml"}, *dirs[] = {"/nonexistent"};
  struct kubecfg *c = NULL;
  if (kubecfg_load_texts(texts, names, dirs, 1, NULL, &c) == KD_OK) kubecfg_free(c);
  free(text);
  return 0;
}
