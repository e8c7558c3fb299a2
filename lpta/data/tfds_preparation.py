"""Preparing TFDS data sets without a network: manual files, the Debian Fashion-MNIST package.

If a data set is not prepared in `config.data.data_dir`, it is built from the original files in
`config.data.manual_dir` (checksums verified), or for Fashion-MNIST from the Debian package
`dataset-fashion-mnist` (checksums of the local files accepted), else downloaded by TFDS after a
quick check that the server answers; when none works, a one-line DataError says which files to
put where.
"""

from collections.abc import Sequence
import os

from absl import logging
import ml_collections

from lpta import errors

# Where the Debian package `dataset-fashion-mnist` installs the original Fashion-MNIST files.
DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
_NETWORK_TIMEOUT_S = 10  # How long to wait for a download server before giving up.


def prepared_builder(config: ml_collections.ConfigDict):
  """The tfds.core.DatasetBuilder of `config.data`, its data set prepared (`_prepare`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(config.name, data_dir=config.data_dir)
  manual_dir = config.manual_dir or os.path.join(builder.data_dir_root, 'downloads', 'manual')
  _prepare(builder, manual_dir)
  return builder


def _source_file_names(builder) -> dict[str, str]:
  """{url: file name in manual_dir} of the builder's registered source files."""
  return {url: url_info.filename or os.path.basename(url)
          for url, url_info in (builder.url_infos or {}).items()}


def _prepare(builder, manual_dir: str) -> None:
  """Builds the data set in the builder's data_dir unless it is there already.

  Source files are taken from `manual_dir` (checksums verified), or for Fashion-MNIST from the
  Debian package (checksums of the local files accepted), else downloaded by TFDS after a quick
  check that the server answers. Under `tfds.testing.mock_data` this is a no-op.

  Args:
    builder: the tfds.core.DatasetBuilder.
    manual_dir: folder with manually downloaded source files.

  Raises:
    DataError: the data set could not be prepared; the cause is chained.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  use_debian = builder.name == 'fashion_mnist' and os.path.isdir(DEBIAN_FASHION_MNIST_DIR)
  source_dir = DEBIAN_FASHION_MNIST_DIR if use_debian else manual_dir
  _guard_downloads(builder, source_dir, accept_local_checksums=use_debian)
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=source_dir))
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(_not_prepared_message(builder, manual_dir, e)) from e


def _guard_downloads(builder, source_dir: str, accept_local_checksums: bool) -> None:
  """Makes `builder` check, when it starts preparing, that it can get every source file.

  Files missing from `source_dir` must be downloadable: their servers are asked once, with a
  short timeout, so an offline machine fails in seconds instead of retrying for minutes. With
  `accept_local_checksums` the files in `source_dir` are accepted whatever their checksums.

  Args:
    builder: the tfds.core.DatasetBuilder whose download manager factory is wrapped.
    source_dir: folder searched for the registered source file names.
    accept_local_checksums: trust the local files (only for the Debian Fashion-MNIST package).
  """
  from tensorflow_datasets.core.download import checksums  # pylint: disable=g-import-not-at-top

  make_download_manager = builder._make_download_manager  # pylint: disable=protected-access

  def make_guarded_download_manager(*args, **kwargs):
    manager = make_download_manager(*args, **kwargs)
    missing_urls, local_url_infos = [], {}
    for url, file_name in _source_file_names(builder).items():
      path = os.path.join(source_dir, file_name)
      if not os.path.isfile(path):
        missing_urls.append(url)
      elif accept_local_checksums:
        local_url_infos[url] = checksums.compute_url_info(path)
    if local_url_infos:
      logging.info('Preparing %s offline from %s, accepting the checksums of the local files.',
                   builder.name, source_dir)
      # pylint: disable-next=protected-access
      manager._url_infos = {**manager._url_infos, **local_url_infos}
    _check_reachable(missing_urls)
    return manager

  builder._make_download_manager = make_guarded_download_manager  # pylint: disable=protected-access


def _check_reachable(urls: Sequence[str]) -> None:
  """Raises ConnectionError unless every url's server answers within the timeout."""
  import requests  # pylint: disable=g-import-not-at-top

  for url in urls:
    try:
      requests.head(url, timeout=_NETWORK_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as e:
      raise ConnectionError(f'cannot reach {url}') from e


def _not_prepared_message(builder, manual_dir: str, error: Exception) -> str:
  """One line: what is missing, where it was looked for, and how to provide it."""
  file_names = sorted(set(_source_file_names(builder).values()))  # mirrors share names
  debian_hint = (' or run `apt-get install dataset-fashion-mnist`,'
                 if builder.name == 'fashion_mnist' else '')
  return (
      f'Data set {builder.name} is not prepared in data_dir={builder.data_dir_root} and could not '
      f'be prepared from manual_dir={manual_dir} or downloaded ({type(error).__name__}). Put the '
      f'original {", ".join(file_names)} in manual_dir,{debian_hint} or pass '
      '--config.data.manual_dir=DIR (a folder holding those files) or --config.data.data_dir=DIR '
      f'(a TFDS data dir where {builder.name} is already prepared).')
