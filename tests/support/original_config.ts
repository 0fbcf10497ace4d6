/**
 * Test fixture: the original README's `config.json`, word for word.
 *
 * @module
 */

/** The original README's config.json. */
export const ORIGINAL_CONFIG = `{
  "models": {
    "gpt-3.5-turbo": {
      "servers": ["http://node1:8000", "http://node2:8000"],
      "strategy": "round_robin"
    },
    "gpt-4": {
      "servers": ["http://node3:8000", "http://node4:8000"],
      "strategy": "real_time_metrics"
    }
  },
  "metrics_update_interval": 10
}
`;
