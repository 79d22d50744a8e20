// The pixel size of a loaded <img>, read from its onLoad event.
import { useCallback, useState, type SyntheticEvent } from 'react'

export interface Pixels {
  width: number
  height: number
}

export function useNaturalSize(): [Pixels | null, (event: SyntheticEvent<HTMLImageElement>) => void] {
  const [pixels, setPixels] = useState<Pixels | null>(null)
  const onLoad = useCallback((event: SyntheticEvent<HTMLImageElement>) => {
    const { naturalWidth: width, naturalHeight: height } = event.currentTarget
    setPixels({ width, height })
  }, [])
  return [pixels, onLoad]
}
