/* kubeconfig.h — where to reach the Kubernetes API and how to authenticate, resolved as kubectl
 * does: --kubeconfig, else $KUBECONFIG (a list of files merged, first file wins per key), else
 * ~/.kube/config, else the in-cluster service account. */
#ifndef KCMDR_KUBECONFIG_H
#define KCMDR_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define KUBECFG_MAX_FILE (4u << 20) /* a kubeconfig bigger than 4 MiB is refused */
#define KUBECFG_MAX_ARGS 64

/* What the user asked for; every field may be NULL. */
struct kubecfg_opts {
  const char *kubeconfig; /* --kubeconfig: this file only */
  const char *context;    /* --context */
  const char *namespace;  /* --namespace: overrides the context's */
  const char *server;     /* --server: overrides the cluster's */
};

struct kubecfg_exec {
  char *command;
  char *args[KUBECFG_MAX_ARGS + 1]; /* NULL-terminated, without the command */
  char *env[KUBECFG_MAX_ARGS + 1];  /* "NAME=value", NULL-terminated */
  char *api_version;                /* client.authentication.k8s.io/v1 or v1beta1 */
  bool provide_cluster_info;
};

/* A resolved configuration. Owns every string and buffer in it. */
struct kubecfg {
  char *source;          /* "file /x/config, context c" or "in-cluster": for messages */
  char *server;          /* https://host:port, no trailing slash */
  char *ca_pem;          /* CA bundle bytes (from -data or the file), or NULL for system CAs */
  size_t ca_pem_len;
  bool insecure;         /* insecure-skip-tls-verify */
  char *tls_server_name;
  char *proxy_url;
  char *cert_pem;        /* client certificate and key, in memory */
  size_t cert_pem_len;
  char *key_pem;
  size_t key_pem_len;
  char *token;           /* static bearer token */
  char *token_file;      /* re-read bearer token (tokenFile, in-cluster) */
  char *username;
  char *password;
  struct kubecfg_exec *exec; /* exec credential plugin, or NULL */
  char *namespace;       /* from opts, the context, or the service account; default "default" */
  bool in_cluster;
};

/* Resolve the configuration for opts into *out (caller frees with kubecfg_free). Every failure
 * is KD_ERR_CONFIG with one line naming the file, the key and what is wrong (or KD_ERR_NOMEM). */
kd_rc kubecfg_load(const struct kubecfg_opts *opts, struct kubecfg **out);

/* Like kubecfg_load, from in-memory kubeconfig texts, merged in order (first wins); base_dirs[i]
 * resolves relative paths of texts[i]; names[i] names it in messages. For tests and fuzzing. */
kd_rc kubecfg_load_texts(const char *const *texts, const char *const *names, const char *const *base_dirs,
                         size_t n, const struct kubecfg_opts *opts, struct kubecfg **out);

/* Like kubecfg_load_texts for one kubeconfig from elsewhere (a Secret, named name in messages),
 * which may make this process read none of its local files: a certificate-authority,
 * client-certificate or client-key given as a file path is refused (KD_ERR_CONFIG naming the key
 * and its "-data" form); only the "-data" forms are taken. The current context, no options. */
kd_rc kubecfg_load_inline(const char *text, const char *name, struct kubecfg **out);

/* Refuse what kubectl refuses or what would leak credentials: insecure-skip-tls-verify together
 * with a CA ("specifying a root certificates file with the insecure flag is not allowed"), and a
 * bearer token, token file, basic auth or exec plugin with an http:// server (the message names
 * the server). KD_OK or KD_ERR_CONFIG; kubecfg_load and kube_client_new both apply it. */
kd_rc kubecfg_check(const struct kubecfg *c);

/* Release everything cfg owns, and cfg. NULL is fine. */
void kubecfg_free(struct kubecfg *cfg);

#endif
